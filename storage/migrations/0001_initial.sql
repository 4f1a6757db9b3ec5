-- The core schema: workspaces and their keys, people, messages (the queue entries) and events.

CREATE TABLE workspaces (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text        NOT NULL,
    site_id         text        NOT NULL UNIQUE,
    identity_secret text        NOT NULL,
    identity_mode   text        NOT NULL DEFAULT 'off'
                    CHECK (identity_mode IN ('off', 'optional', 'required')),
    in_app_enabled  boolean     NOT NULL DEFAULT true,
    active_s        integer     NOT NULL DEFAULT 10  CHECK (active_s > 0),
    inactive_s      integer     NOT NULL DEFAULT 60  CHECK (inactive_s > 0),
    low_s           integer     NOT NULL DEFAULT 180 CHECK (low_s > 0),
    recent_days     integer     NOT NULL DEFAULT 30  CHECK (recent_days > 0),
    lease_s         integer     NOT NULL DEFAULT 300 CHECK (lease_s > 0),
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Only the SHA-256 of a key is stored: keys are 256-bit random tokens, so a fast hash is enough.
CREATE TABLE api_keys (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id bigint      NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    key_hash     bytea       NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- A person is known by external_id, email, or both; emails are stored lower-cased.
CREATE TABLE people (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id bigint      NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    external_id  text,
    email        text,
    attributes   jsonb       NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT people_known CHECK (external_id IS NOT NULL OR email IS NOT NULL),
    CONSTRAINT people_external_id_key UNIQUE (workspace_id, external_id),
    CONSTRAINT people_email_key UNIQUE (workspace_id, email)
);

CREATE TABLE messages (
    id                uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id      bigint      NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    person_id         bigint      NOT NULL REFERENCES people (id) ON DELETE CASCADE,
    state             text        NOT NULL DEFAULT 'queued'
                      CHECK (state IN ('queued', 'offered', 'shown', 'dismissed', 'expired', 'recalled')),
    content           jsonb       NOT NULL,
    properties        jsonb       NOT NULL DEFAULT '{}',
    priority          integer     NOT NULL DEFAULT 0,
    persistent        boolean     NOT NULL DEFAULT false,
    campaign          text,
    idempotency_key   text,
    idempotency_hash  bytea,
    device_id         text,
    lease_expires_at  timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz NOT NULL,
    shown_at          timestamptz,
    closed_at         timestamptz,
    CONSTRAINT messages_idempotency_key UNIQUE (workspace_id, idempotency_key)
);

-- The claim's index: a person's deliverable messages in delivery order.
CREATE INDEX messages_pending_by_person ON messages (person_id, priority, created_at)
    WHERE state IN ('queued', 'offered');
-- The tier's fact (the person's latest message) and the person's message list.
CREATE INDEX messages_by_person_created ON messages (person_id, created_at DESC);
-- Persistent messages a device has shown and keeps until dismissed.
CREATE INDEX messages_persistent_shown ON messages (person_id, device_id)
    WHERE state = 'shown' AND persistent;
-- Recall when a workspace is disabled.
CREATE INDEX messages_pending_by_workspace ON messages (workspace_id)
    WHERE state IN ('queued', 'offered');
-- The expiry sweep.
CREATE INDEX messages_pending_by_expiry ON messages (expires_at)
    WHERE state IN ('queued', 'offered');

CREATE TABLE events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id bigint      NOT NULL,
    message_id   uuid        NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    type         text        NOT NULL
                 CHECK (type IN ('queued', 'offered', 'shown', 'action', 'dismissed', 'expired', 'recalled')),
    device_id    text,
    action       text,
    at           timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX events_by_message ON events (message_id, id);
-- Client reports are idempotent: one shown, one dismissed, one of each action per message.
CREATE UNIQUE INDEX events_client_report_once ON events (message_id, type, coalesce(action, ''))
    WHERE type IN ('shown', 'action', 'dismissed');

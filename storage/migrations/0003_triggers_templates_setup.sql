-- Sending like a marketer: stored templates, event triggers, tracked events and setup status.

CREATE TABLE templates (
    id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id bigint      NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name         text        NOT NULL,
    content      jsonb       NOT NULL,
    properties   jsonb       NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT templates_name_key UNIQUE (workspace_id, name)
);

CREATE TABLE triggers (
    id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id bigint      NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    event        text        NOT NULL,
    filter       jsonb,
    message      jsonb       NOT NULL,
    reentry      text        NOT NULL DEFAULT 'every_time' CHECK (reentry IN ('every_time', 'once')),
    enabled      boolean     NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX triggers_by_event ON triggers (workspace_id, event) WHERE enabled;

-- "Once per person": the primary key lets exactly one concurrent event win.
CREATE TABLE trigger_deliveries (
    trigger_id uuid        NOT NULL REFERENCES triggers (id) ON DELETE CASCADE,
    person_id  bigint      NOT NULL REFERENCES people (id) ON DELETE CASCADE,
    message_id uuid,
    at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (trigger_id, person_id)
);

-- Events a person did (from the backend or a device), as opposed to message events.
CREATE TABLE person_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id bigint      NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    person_id    bigint      NOT NULL REFERENCES people (id) ON DELETE CASCADE,
    name         text        NOT NULL,
    data         jsonb       NOT NULL DEFAULT '{}',
    source       text        NOT NULL CHECK (source IN ('server', 'device')),
    at           timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX person_events_by_person ON person_events (person_id, id);

ALTER TABLE messages ADD COLUMN trigger_id uuid;
ALTER TABLE messages ADD COLUMN template_id uuid;

-- Setup status: when and on which platform a device first showed a message of the workspace.
ALTER TABLE workspaces ADD COLUMN first_shown_at timestamptz;
ALTER TABLE workspaces ADD COLUMN first_shown_platform text;

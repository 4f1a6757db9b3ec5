-- Broadcasts: one send queued for many people at once, each as an ordinary message.

CREATE TABLE broadcasts (
    id               uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id     bigint      NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    audience         jsonb       NOT NULL,
    content          jsonb       NOT NULL,
    properties       jsonb       NOT NULL DEFAULT '{}',
    priority         integer     NOT NULL DEFAULT 0,
    persistent       boolean     NOT NULL DEFAULT false,
    campaign         text,
    expires_at       timestamptz,
    ttl_s            integer,
    status           text        NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'recalled')),
    queued           integer     NOT NULL DEFAULT 0,
    idempotency_key  text,
    idempotency_hash bytea,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT broadcasts_idempotency_key UNIQUE (workspace_id, idempotency_key)
);

-- No foreign key: a million-person broadcast would pay one lookup per inserted message.
ALTER TABLE messages ADD COLUMN broadcast_id uuid;
CREATE INDEX messages_by_broadcast ON messages (broadcast_id) WHERE broadcast_id IS NOT NULL;

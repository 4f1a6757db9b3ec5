-- Retention: messages in a final state, with their events, are deleted once the workspace's
-- retention period has passed since they became final (docs/decisions/0016-fail-fast-leases-retention.md).

ALTER TABLE workspaces ADD COLUMN retention_days integer NOT NULL DEFAULT 30
    CHECK (retention_days BETWEEN 1 AND 3650);

-- The retention sweep: a workspace's final messages by when they became final. A shown message
-- is final from its first action (closed_at) or from when it expired, whichever came first;
-- least() ignores NULL, so an unacted shown message waits for its expires_at.
CREATE INDEX messages_final_by_workspace ON messages (workspace_id, (least(closed_at, expires_at)))
    WHERE state IN ('shown', 'dismissed', 'expired', 'recalled');

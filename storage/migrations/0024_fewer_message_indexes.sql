-- Fewer index entries per queued message (docs/decisions/0035-fewer-message-indexes.md): a
-- broadcast entry (no idempotency key, queued) touched seven indexes of `messages`; now five.
--
-- Built in this migration's transaction: `mailslot migrate` runs each file in one, and
-- CREATE INDEX CONCURRENTLY cannot run inside a transaction. While the two new indexes build,
-- writes to `messages` wait (a scan of the table: about a second per million messages). On a
-- large database, build them beforehand without blocking writes, under the same names, with
-- the statements below plus CONCURRENTLY (docs/operations.md, "Migrations"); this file then finds
-- them valid and only drops the old indexes. An invalid one (a concurrent build that failed)
-- stops the migration with a message saying what to do.
DO $$
DECLARE
    broken text;
BEGIN
    SELECT string_agg(c.relname, ', ') INTO broken
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
    WHERE c.relname IN ('messages_idempotency_key_given', 'messages_pending_by_workspace_expiry')
      AND pg_table_is_visible(c.oid)
      AND NOT i.indisvalid;
    IF broken IS NOT NULL THEN
        RAISE EXCEPTION 'index % is invalid (a CREATE INDEX CONCURRENTLY that did not finish): drop it and run the migration again', broken;
    END IF;
END
$$;

-- Idempotency keys stay unique per workspace; rows without a key (every broadcast entry, most
-- sends) are no longer indexed at all. `ON CONFLICT (workspace_id, idempotency_key)` must now
-- name the predicate (`WHERE idempotency_key IS NOT NULL`) to infer this index. A gateway older
-- than this release does not, and needs the full constraint for every send: that constraint is
-- dropped by 0026_drop_full_idempotency_key_after_deploy.sql, once no such gateway runs.
CREATE UNIQUE INDEX IF NOT EXISTS messages_idempotency_key_given ON messages (workspace_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- One index for a workspace's pending messages by expiry serves what two did: the recall when
-- a workspace is disabled and its count (workspace_id, expires_at > now), and the expiry sweep,
-- which now walks it workspace by workspace (expire_messages).
CREATE INDEX IF NOT EXISTS messages_pending_by_workspace_expiry ON messages (workspace_id, expires_at)
    WHERE state IN ('queued', 'offered');
DROP INDEX messages_pending_by_workspace;
DROP INDEX messages_pending_by_expiry;

-- The census reads only what it names (docs/decisions/0035-fewer-message-indexes.md): people
-- whose latest message, folded in by retention, is within their workspace's recent window, found
-- by index instead of by reading every person. Partial: only people retention ever folded a
-- message into are in it, and a send does not write it.
--
-- Built in this migration's transaction (CREATE INDEX CONCURRENTLY cannot run in one): writes to
-- `people` wait while it builds, under a second per million people. On a large database, build it
-- beforehand with CONCURRENTLY under the same name (docs/operations.md, "Migrations"); an
-- invalid one (a concurrent build that failed) stops the migration with a message.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
               WHERE c.relname = 'people_recent_by_workspace' AND pg_table_is_visible(c.oid) AND NOT i.indisvalid) THEN
        RAISE EXCEPTION 'index people_recent_by_workspace is invalid (a CREATE INDEX CONCURRENTLY that did not finish): drop it and run the migration again';
    END IF;
END
$$;

CREATE INDEX IF NOT EXISTS people_recent_by_workspace ON people (workspace_id, last_message_at)
    WHERE last_message_at IS NOT NULL;

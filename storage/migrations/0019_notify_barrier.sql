-- The commit-order barrier (docs/decisions/0021-answer-from-memory.md): a process sends a marker
-- on its own channel and waits to hear it back on its listener. Notifications reach a listening
-- connection in commit order, so once the marker is heard, every notice committed before it has
-- been heard too. Like the other wake-up functions (0006), statements call this instead of
-- pg_notify; the payload is a bare token that only the sending process reads.
CREATE FUNCTION mailslot_notify_barrier_v1(channel text, token text) RETURNS void
LANGUAGE sql VOLATILE
AS $$
    SELECT pg_notify($1, $2)
$$;

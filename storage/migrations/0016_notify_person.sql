-- Sends in one statement (decision 0022): a send that creates its person wakes the polls parked
-- under that person's keys in the same statement, where the person's new row is not yet visible
-- to mailslot_notify_queued_v1 (which reads the keys from the row). This function takes the keys
-- from the caller and sends the same `queued` payload, so storage/notices.py parses it unchanged.
CREATE FUNCTION mailslot_notify_person_v1(workspace_id bigint, person_id bigint, keys text[]) RETURNS void
LANGUAGE sql VOLATILE
AS $$
    SELECT mailslot_notify_v1(jsonb_build_object(
        'type', 'queued', 'workspace', $1, 'person', $2,
        'keys', coalesce(array_remove($3, NULL), '{}'::text[])))
$$;

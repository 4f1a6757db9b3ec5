-- The wake-up protocol in one place on the SQL side: every statement that wakes polls calls one of
-- these functions, so the channel name is written once (here) and each payload has one shape,
-- which storage/notices.py parses (tests/storage/test_notices.py ties the two together).
--
-- The names are versioned: a payload or signature change adds `_v2` functions in a new file and
-- leaves these for the gateways still running during a rolling deploy. Bodies use $n, not the
-- parameter names, because a column of the same name would silently win over a parameter.

-- Send `payload` plus `at` (the database's clock, seconds since the epoch, for the lag metric)
-- on the queue channel. Delivered on commit, to every process that LISTENs.
CREATE FUNCTION mailslot_notify_v1(payload jsonb) RETURNS void
LANGUAGE sql VOLATILE
AS $$
    SELECT pg_notify('mailslot_queue_v1',
                     ($1 || jsonb_build_object('at', extract(epoch FROM clock_timestamp())))::text)
$$;

-- Messages became deliverable for one person: wake the polls parked under any of the person's
-- keys (external id, then email), read from the person's row as this transaction sees it.
CREATE FUNCTION mailslot_notify_queued_v1(workspace_id bigint, person_id bigint) RETURNS void
LANGUAGE sql VOLATILE
AS $$
    SELECT mailslot_notify_v1(jsonb_build_object(
        'type', 'queued', 'workspace', $1, 'person', $2,
        'keys', coalesce((SELECT array_remove(ARRAY[p.external_id, p.email], NULL)
                          FROM people p WHERE p.id = $2), '{}'::text[])))
$$;

-- A broadcast queued messages for many people of a workspace: one notice wakes them all.
CREATE FUNCTION mailslot_notify_broadcast_v1(workspace_id bigint) RETURNS void
LANGUAGE sql VOLATILE
AS $$
    SELECT mailslot_notify_v1(jsonb_build_object('type', 'broadcast', 'workspace', $1))
$$;

-- A workspace's settings changed: every process drops its cached copy.
CREATE FUNCTION mailslot_notify_workspace_v1(workspace_id bigint) RETURNS void
LANGUAGE sql VOLATILE
AS $$
    SELECT mailslot_notify_v1(jsonb_build_object('type', 'workspace', 'workspace', $1))
$$;

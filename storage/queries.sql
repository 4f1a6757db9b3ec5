-- Every runtime statement of mailslot. Each starts with a `-- name --` header and one `--` line
-- saying what it does and what $1…$n are. Times compare against coalesce($n, now()): production
-- passes NULL, so the database clock is the only clock; tests pass a fixed instant.

-- create_workspace --
-- Create a workspace. $1 name, $2 site_id, $3 identity_secret
INSERT INTO workspaces (name, site_id, identity_secret)
VALUES ($1, $2, $3)
RETURNING id, name, site_id, identity_secret, identity_mode, in_app_enabled,
          active_s, inactive_s, low_s, recent_days, lease_s;

-- create_api_key --
-- Store the hash of a new API key for a workspace. $1 workspace_id, $2 sha256 of the key
INSERT INTO api_keys (workspace_id, key_hash) VALUES ($1, $2);

-- get_workspace_by_site_id --
-- A workspace by its public site id. $1 site_id
SELECT id, name, site_id, identity_secret, identity_mode, in_app_enabled,
       active_s, inactive_s, low_s, recent_days, lease_s
FROM workspaces
WHERE site_id = $1;

-- get_workspace_by_key_hash --
-- The workspace an API key belongs to. $1 sha256 of the key
SELECT w.id, w.name, w.site_id, w.identity_secret, w.identity_mode, w.in_app_enabled,
       w.active_s, w.inactive_s, w.low_s, w.recent_days, w.lease_s
FROM api_keys k
JOIN workspaces w ON w.id = k.workspace_id
WHERE k.key_hash = $1;

-- get_workspace_by_name --
-- The oldest workspace with this name. $1 name
SELECT id, name, site_id, identity_secret, identity_mode, in_app_enabled,
       active_s, inactive_s, low_s, recent_days, lease_s
FROM workspaces
WHERE name = $1
ORDER BY id
LIMIT 1;

-- lock_workspace --
-- Lock a workspace row so that no send commits while its settings change. $1 workspace_id
SELECT id FROM workspaces WHERE id = $1 FOR UPDATE;

-- update_workspace --
-- Change settings (NULL keeps a value) and tell every process; turning in-app off recalls every queued and offered message. $1 workspace_id, $2 in_app_enabled, $3 identity_mode, $4 active_s, $5 inactive_s, $6 low_s, $7 recent_days, $8 lease_s, $9 now
WITH clock AS (
    SELECT coalesce($9::timestamptz, now()) AS now
),
updated AS (
    UPDATE workspaces SET
        in_app_enabled = coalesce($2, in_app_enabled),
        identity_mode = coalesce($3, identity_mode),
        active_s = coalesce($4, active_s),
        inactive_s = coalesce($5, inactive_s),
        low_s = coalesce($6, low_s),
        recent_days = coalesce($7, recent_days),
        lease_s = coalesce($8, lease_s)
    WHERE id = $1
    RETURNING id, name, site_id, identity_secret, identity_mode, in_app_enabled,
              active_s, inactive_s, low_s, recent_days, lease_s
),
recalled AS (
    UPDATE messages m
    SET state = 'recalled', closed_at = clock.now, lease_expires_at = NULL
    FROM updated, clock
    WHERE m.workspace_id = updated.id
      AND NOT updated.in_app_enabled
      AND m.state IN ('queued', 'offered')
      AND m.expires_at > clock.now
    RETURNING m.id, m.workspace_id
),
recorded AS (
    INSERT INTO events (workspace_id, message_id, type, at)
    SELECT recalled.workspace_id, recalled.id, 'recalled', clock.now FROM recalled, clock
),
notified AS (
    SELECT pg_notify('mailslot_queue_v1', json_build_object('type', 'workspace', 'workspace', id)::text)
    FROM updated
)
SELECT id, name, site_id, identity_secret, identity_mode, in_app_enabled,
       active_s, inactive_s, low_s, recent_days, lease_s,
       (SELECT count(*) FROM recalled) AS recalled,
       (SELECT count(*) FROM notified) AS notified
FROM updated;

-- ensure_person_by_external_id --
-- The person with this id, created if new. $1 workspace_id, $2 external_id
INSERT INTO people (workspace_id, external_id)
VALUES ($1, $2)
ON CONFLICT (workspace_id, external_id) DO UPDATE SET external_id = EXCLUDED.external_id
RETURNING id, external_id, email;

-- ensure_person_by_email --
-- The person with this email, created if new. $1 workspace_id, $2 lower-cased email
INSERT INTO people (workspace_id, email)
VALUES ($1, $2)
ON CONFLICT (workspace_id, email) DO UPDATE SET email = EXCLUDED.email
RETURNING id, external_id, email;

-- get_person --
-- A person by id, or by email when no one has that id. $1 workspace_id, $2 external id or email
SELECT id, external_id, email, attributes
FROM people
WHERE workspace_id = $1 AND (external_id = $2 OR email = lower($2))
ORDER BY (external_id = $2) IS TRUE DESC
LIMIT 1;

-- upsert_person_attributes --
-- Identify: create the person or merge attributes into theirs. $1 workspace_id, $2 external_id, $3 attributes to set, $4 attribute names to remove
INSERT INTO people (workspace_id, external_id, attributes)
VALUES ($1, $2, $3)
ON CONFLICT (workspace_id, external_id) DO UPDATE
SET attributes = (people.attributes - $4::text[]) || EXCLUDED.attributes, updated_at = now()
RETURNING id, external_id, email, attributes;

-- lock_person_by_email --
-- The person who holds an email, locked for linking. $1 workspace_id, $2 lower-cased email
SELECT id, external_id, attributes
FROM people
WHERE workspace_id = $1 AND email = $2
FOR UPDATE;

-- move_person_messages --
-- Move every message of one person to another (identify linking an email-only person). $1 to person id, $2 from person id
UPDATE messages SET person_id = $1 WHERE person_id = $2;

-- delete_person --
-- Delete a person that identify merged into another. $1 person id
DELETE FROM people WHERE id = $1;

-- set_person_email --
-- Link (or with NULL, unlink) a person's email. $1 person id, $2 lower-cased email or NULL, $3 attributes merged under the person's own
UPDATE people
SET email = $2, attributes = $3::jsonb || attributes, updated_at = now()
WHERE id = $1
RETURNING id, external_id, email, attributes;

-- send_message --
-- Queue one message for a person unless the workspace is disabled or the idempotency key was used; wake the person's devices. $1 workspace_id, $2 person_id, $3 content, $4 properties, $5 priority, $6 persistent, $7 campaign, $8 expires_at or NULL, $9 idempotency_key, $10 idempotency_hash, $11 now, $12 notification payload, $13 ttl_s when $8 is NULL
WITH clock AS (
    SELECT coalesce($11::timestamptz, now()) AS now
),
workspace AS (
    SELECT id FROM workspaces WHERE id = $1 AND in_app_enabled FOR SHARE
),
inserted AS (
    INSERT INTO messages (workspace_id, person_id, content, properties, priority, persistent,
                          campaign, expires_at, idempotency_key, idempotency_hash, created_at)
    SELECT workspace.id, $2, $3, $4, $5, $6, $7,
           coalesce($8::timestamptz, clock.now + make_interval(secs => $13::integer)),
           $9, $10, clock.now
    FROM workspace, clock
    ON CONFLICT (workspace_id, idempotency_key) DO NOTHING
    RETURNING id, workspace_id, created_at
),
recorded AS (
    INSERT INTO events (workspace_id, message_id, type, at)
    SELECT workspace_id, id, 'queued', created_at FROM inserted
),
notified AS (
    SELECT pg_notify('mailslot_queue_v1', $12) FROM inserted
)
SELECT (SELECT count(*) FROM workspace) > 0 AS enabled,
       (SELECT id FROM inserted) AS id,
       (SELECT count(*) FROM notified) AS notified;

-- get_message_id_by_idempotency_key --
-- The message an earlier send with this key queued, with the hash of that send's body. $1 workspace_id, $2 idempotency_key
SELECT id, idempotency_hash
FROM messages
WHERE workspace_id = $1 AND idempotency_key = $2;

-- get_message --
-- One message of a workspace with its person; queued or offered past expires_at reads as expired. $1 workspace_id, $2 message id, $3 now
SELECT m.id, p.external_id, p.email,
       CASE WHEN m.state IN ('queued', 'offered') AND m.expires_at <= coalesce($3::timestamptz, now())
            THEN 'expired' ELSE m.state END AS state,
       m.content, m.properties, m.priority, m.persistent, m.campaign,
       m.created_at, m.expires_at, m.device_id, m.lease_expires_at, m.shown_at
FROM messages m
JOIN people p ON p.id = m.person_id
WHERE m.workspace_id = $1 AND m.id = $2;

-- list_message_events --
-- A message's events, oldest first. $1 message id
SELECT type, at, device_id, action
FROM events
WHERE message_id = $1
ORDER BY id;

-- list_person_messages --
-- A person's queue first, then their most recent messages. $1 person id, $2 at most this many, $3 now
SELECT m.id, p.external_id, p.email,
       CASE WHEN m.state IN ('queued', 'offered') AND m.expires_at <= coalesce($3::timestamptz, now())
            THEN 'expired' ELSE m.state END AS state,
       m.content, m.properties, m.priority, m.persistent, m.campaign,
       m.created_at, m.expires_at, m.device_id, m.lease_expires_at, m.shown_at
FROM messages m
JOIN people p ON p.id = m.person_id
WHERE m.person_id = $1
ORDER BY m.state IN ('queued', 'offered') DESC, m.created_at DESC
LIMIT $2;

-- recall_message --
-- Recall a queued or offered message; returns the state it had (none: unknown). $1 workspace_id, $2 message id, $3 now
WITH clock AS (
    SELECT coalesce($3::timestamptz, now()) AS now
),
target AS (
    SELECT m.id, m.workspace_id,
           CASE WHEN m.state IN ('queued', 'offered') AND m.expires_at <= clock.now
                THEN 'expired' ELSE m.state END AS state
    FROM messages m, clock
    WHERE m.workspace_id = $1 AND m.id = $2
    FOR UPDATE OF m
),
recalled AS (
    UPDATE messages m
    SET state = 'recalled', closed_at = clock.now, lease_expires_at = NULL
    FROM target, clock
    WHERE m.id = target.id AND target.state IN ('queued', 'offered')
    RETURNING m.id, m.workspace_id
),
recorded AS (
    INSERT INTO events (workspace_id, message_id, type, at)
    SELECT recalled.workspace_id, recalled.id, 'recalled', clock.now FROM recalled, clock
)
SELECT state AS previous_state FROM target;

-- claim_messages --
-- The poll: claim a person's deliverable messages for one device under a lease, record the offers and expiries, and return what the device holds with the tier's facts. $1 workspace_id, $2 user (id or email), $3 device_id, $4 now, $5 lease_s, $6 at most this many new claims
WITH clock AS MATERIALIZED (
    SELECT coalesce($4::timestamptz, now()) AS now
),
person AS MATERIALIZED (
    SELECT p.id
    FROM people p
    WHERE p.workspace_id = $1 AND (p.external_id = $2 OR p.email = lower($2))
    ORDER BY (p.external_id = $2) IS TRUE DESC
    LIMIT 1
),
due AS (
    SELECT m.id
    FROM messages m, person, clock
    WHERE m.person_id = person.id
      AND m.state IN ('queued', 'offered')
      AND m.expires_at <= clock.now
    FOR UPDATE OF m SKIP LOCKED
),
expired AS (
    UPDATE messages m
    SET state = 'expired', closed_at = clock.now, lease_expires_at = NULL
    FROM due, clock
    WHERE m.id = due.id
    RETURNING m.id, m.workspace_id
),
free AS (
    SELECT m.id
    FROM messages m, person, clock
    WHERE m.person_id = person.id
      AND m.state IN ('queued', 'offered')
      AND m.expires_at > clock.now
      AND (m.state = 'queued' OR m.lease_expires_at <= clock.now)
    ORDER BY m.priority, m.created_at
    LIMIT $6
    FOR UPDATE OF m SKIP LOCKED
),
claimed AS (
    UPDATE messages m
    SET state = 'offered', device_id = $3,
        lease_expires_at = clock.now + make_interval(secs => $5::integer)
    FROM free, clock
    WHERE m.id = free.id
    RETURNING m.id, m.workspace_id, m.content, m.properties, m.priority, m.persistent,
              m.expires_at, m.campaign, m.created_at, true AS offered
),
recorded AS (
    INSERT INTO events (workspace_id, message_id, type, device_id, at)
    SELECT claimed.workspace_id, claimed.id, 'offered', $3, clock.now FROM claimed, clock
    UNION ALL
    SELECT expired.workspace_id, expired.id, 'expired', NULL, clock.now FROM expired, clock
),
held AS (
    SELECT m.id, m.workspace_id, m.content, m.properties, m.priority, m.persistent,
           m.expires_at, m.campaign, m.created_at, m.state = 'offered' AS offered
    FROM messages m, person, clock
    WHERE m.person_id = person.id
      AND m.device_id = $3
      AND m.expires_at > clock.now
      AND ((m.state = 'offered' AND m.lease_expires_at > clock.now)
           OR (m.state = 'shown' AND m.persistent))
),
delivered AS (
    SELECT * FROM claimed
    UNION ALL
    SELECT * FROM held
),
facts AS (
    SELECT clock.now, person.id AS person_id,
           (SELECT max(m.created_at) FROM messages m WHERE m.person_id = person.id) AS last_message_at
    FROM clock LEFT JOIN person ON true
)
SELECT facts.now, facts.person_id, facts.last_message_at,
       d.id, d.content, d.properties, d.priority, d.persistent, d.expires_at, d.campaign, d.offered
FROM facts
LEFT JOIN delivered d ON true
ORDER BY d.priority, d.created_at;

-- record_device_event --
-- Apply one client report (shown, action, dismissed) to a message offered or shown to this device; a repeated report is recorded once. $1 workspace_id, $2 message id, $3 device_id, $4 user (id or email), $5 type, $6 action name or NULL, $7 now
WITH clock AS (
    SELECT coalesce($7::timestamptz, now()) AS now
),
person AS (
    SELECT p.id
    FROM people p
    WHERE p.workspace_id = $1 AND (p.external_id = $4 OR p.email = lower($4))
    ORDER BY (p.external_id = $4) IS TRUE DESC
    LIMIT 1
),
target AS (
    SELECT m.id, m.workspace_id, m.state
    FROM messages m, person
    WHERE m.id = $2
      AND m.workspace_id = $1
      AND m.person_id = person.id
      AND m.device_id = $3
      AND m.state = ANY (CASE WHEN $5::text = 'action' THEN ARRAY['shown', 'dismissed']
                              ELSE ARRAY['offered', 'shown', 'dismissed'] END)
    FOR UPDATE OF m
),
changed AS (
    UPDATE messages m
    SET state = $5::text,
        shown_at = coalesce(m.shown_at, clock.now),
        lease_expires_at = NULL,
        closed_at = CASE WHEN $5::text = 'dismissed' THEN clock.now END
    FROM target, clock
    WHERE m.id = target.id
      AND (($5::text = 'shown' AND target.state = 'offered')
           OR ($5::text = 'dismissed' AND target.state IN ('offered', 'shown')))
),
recorded AS (
    INSERT INTO events (workspace_id, message_id, type, device_id, action, at)
    SELECT target.workspace_id, target.id, $5::text, $3, $6::text, clock.now FROM target, clock
    ON CONFLICT DO NOTHING
)
SELECT EXISTS (SELECT 1 FROM target) AS accepted,
       EXISTS (SELECT 1 FROM messages WHERE id = $2 AND workspace_id = $1) AS known;

-- expire_messages --
-- Record as expired a batch of queued or offered messages past expires_at, in any workspace. $1 now, $2 batch size
WITH clock AS (
    SELECT coalesce($1::timestamptz, now()) AS now
),
due AS (
    SELECT m.id
    FROM messages m, clock
    WHERE m.state IN ('queued', 'offered') AND m.expires_at <= clock.now
    ORDER BY m.expires_at
    LIMIT $2
    FOR UPDATE OF m SKIP LOCKED
),
expired AS (
    UPDATE messages m
    SET state = 'expired', closed_at = clock.now, lease_expires_at = NULL
    FROM due, clock
    WHERE m.id = due.id
    RETURNING m.id, m.workspace_id
),
recorded AS (
    INSERT INTO events (workspace_id, message_id, type, at)
    SELECT expired.workspace_id, expired.id, 'expired', clock.now FROM expired, clock
)
SELECT count(*) AS expired FROM expired;

-- check_ready --
-- Readiness probe: the database answers.
SELECT 1;

-- create_broadcast --
-- Record a broadcast before its messages are queued. $1 workspace_id, $2 audience, $3 content, $4 properties, $5 priority, $6 persistent, $7 campaign, $8 expires_at or NULL, $9 ttl_s, $10 idempotency_key, $11 idempotency_hash, $12 now
INSERT INTO broadcasts (workspace_id, audience, content, properties, priority, persistent, campaign,
                        expires_at, ttl_s, idempotency_key, idempotency_hash, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, coalesce($12::timestamptz, now()))
ON CONFLICT (workspace_id, idempotency_key) DO NOTHING
RETURNING id;

-- ensure_people --
-- Create, in bulk, the people of an audience not yet known. $1 workspace_id, $2 external ids, $3 lower-cased emails
WITH by_id AS (
    INSERT INTO people (workspace_id, external_id)
    SELECT $1, unnest($2::text[])
    ON CONFLICT DO NOTHING
)
INSERT INTO people (workspace_id, email)
SELECT $1, unnest($3::text[])
ON CONFLICT DO NOTHING;

-- queue_broadcast --
-- Queue one message per person of the audience in one set-based statement, record the queued events, and wake the workspace's devices with one notification. $1 workspace_id, $2 broadcast id, $3 external ids, $4 lower-cased emails, $5 everyone, $6 now
WITH clock AS (
    SELECT coalesce($6::timestamptz, now()) AS now
),
workspace AS (
    SELECT id FROM workspaces WHERE id = $1 AND in_app_enabled FOR SHARE
),
broadcast AS (
    SELECT b.id, b.content, b.properties, b.priority, b.persistent, b.campaign,
           coalesce(b.expires_at, clock.now + make_interval(secs => b.ttl_s)) AS expires_at
    FROM broadcasts b, workspace, clock
    WHERE b.id = $2 AND b.workspace_id = workspace.id
),
audience AS (
    SELECT p.id FROM people p WHERE $5::boolean AND p.workspace_id = $1
    UNION ALL
    SELECT p.id FROM people p WHERE p.workspace_id = $1 AND p.external_id = ANY ($3::text[])
    UNION ALL
    SELECT p.id FROM people p WHERE p.workspace_id = $1 AND p.email = ANY ($4::text[])
),
inserted AS (
    INSERT INTO messages (workspace_id, person_id, broadcast_id, content, properties, priority, persistent,
                          campaign, expires_at, created_at)
    SELECT $1, audience.id, broadcast.id, broadcast.content, broadcast.properties, broadcast.priority,
           broadcast.persistent, broadcast.campaign, broadcast.expires_at, clock.now
    FROM audience, broadcast, clock
    RETURNING id
),
recorded AS (
    INSERT INTO events (workspace_id, message_id, type, at)
    SELECT $1, inserted.id, 'queued', clock.now FROM inserted, clock
),
counted AS (
    SELECT count(*) AS queued FROM inserted
),
updated AS (
    UPDATE broadcasts SET queued = counted.queued FROM counted WHERE broadcasts.id = $2
),
notified AS (
    SELECT pg_notify('mailslot_queue_v1',
                     json_build_object('type', 'broadcast', 'workspace', $1,
                                       'at', extract(epoch FROM clock_timestamp()))::text)
    FROM counted
    WHERE counted.queued > 0
)
SELECT (SELECT count(*) FROM workspace) > 0 AS enabled,
       (SELECT queued FROM counted) AS queued,
       (SELECT count(*) FROM notified) AS notified;

-- get_broadcast --
-- A broadcast of a workspace with its live counts by message state. $1 workspace_id, $2 broadcast id
SELECT b.id, b.status, b.queued, b.campaign, b.created_at, b.idempotency_hash,
       coalesce((SELECT jsonb_object_agg(s.state, s.n)
                 FROM (SELECT m.state, count(*) AS n FROM messages m
                       WHERE m.broadcast_id = b.id GROUP BY m.state) s), '{}') AS states
FROM broadcasts b
WHERE b.workspace_id = $1 AND b.id = $2;

-- get_broadcast_id_by_idempotency_key --
-- The broadcast an earlier request with this key created. $1 workspace_id, $2 idempotency_key
SELECT id FROM broadcasts WHERE workspace_id = $1 AND idempotency_key = $2;

-- import_people --
-- Create people in bulk from external ids, skipping known ones (operators and the bench). $1 workspace_id, $2 external ids
INSERT INTO people (workspace_id, external_id)
SELECT $1, unnest($2::text[])
ON CONFLICT DO NOTHING;

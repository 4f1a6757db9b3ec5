-- Every runtime statement of mailslot. Each starts with a `-- name --` header and one `--` line
-- saying what it does and what $1…$n are. Times compare against coalesce($n, now()): production
-- passes NULL, so the database clock is the only clock; tests pass a fixed instant.
-- A statement that wakes polls calls a mailslot_notify_*_v1 function (migration 0006), never
-- pg_notify itself: the functions hold the channel and the payload shapes storage/notices.py parses.

-- create_workspace --
-- Create a workspace with its first identity secret. $1 name, $2 site_id, $3 identity_secret, $4 identity_mode, $5 the secret's kid
WITH created AS (
    INSERT INTO workspaces (name, site_id, identity_secret, identity_mode)
    VALUES ($1, $2, $3, $4)
    RETURNING id, name, site_id, identity_secret, identity_mode, in_app_enabled,
              active_s, inactive_s, low_s, recent_days, lease_s, identity_hash_allowed, max_token_lifetime_s,
              rate_limits, retention_days, device_attributes, created_at
),
first_secret AS (
    INSERT INTO identity_secrets (workspace_id, kid, secret, created_at)
    SELECT id, $5, identity_secret, created_at FROM created
    RETURNING kid, secret, created_at, expires_at
)
SELECT id, name, site_id, identity_secret, identity_mode, in_app_enabled,
       active_s, inactive_s, low_s, recent_days, lease_s, identity_hash_allowed, max_token_lifetime_s,
       rate_limits, retention_days, device_attributes,
       (SELECT jsonb_agg(to_jsonb(first_secret)) FROM first_secret) AS identity_secrets
FROM created;

-- create_api_key --
-- Store the hash of a new API key for a workspace. $1 workspace_id, $2 sha256 of the key
INSERT INTO api_keys (workspace_id, key_hash) VALUES ($1, $2);

-- get_workspace_by_site_id --
-- A workspace by its public site id. $1 site_id
SELECT id, name, site_id, identity_secret, identity_mode, in_app_enabled,
       active_s, inactive_s, low_s, recent_days, lease_s, identity_hash_allowed, max_token_lifetime_s,
       rate_limits, retention_days, device_attributes,
       mailslot_identity_secrets_v1(id) AS identity_secrets
FROM workspaces
WHERE site_id = $1;

-- get_workspace_by_key_hash --
-- The workspace an API key belongs to, and until when the key works (NULL: no end). $1 sha256 of the key
SELECT w.id, w.name, w.site_id, w.identity_secret, w.identity_mode, w.in_app_enabled,
       w.active_s, w.inactive_s, w.low_s, w.recent_days, w.lease_s, w.identity_hash_allowed,
       w.max_token_lifetime_s, w.rate_limits, w.retention_days, w.device_attributes, mailslot_identity_secrets_v1(w.id) AS identity_secrets,
       k.expires_at AS key_expires_at
FROM api_keys k
JOIN workspaces w ON w.id = k.workspace_id
WHERE k.key_hash = $1;

-- get_workspace_by_name --
-- The oldest workspace with this name. $1 name
SELECT id, name, site_id, identity_secret, identity_mode, in_app_enabled,
       active_s, inactive_s, low_s, recent_days, lease_s, identity_hash_allowed, max_token_lifetime_s,
       rate_limits, retention_days, device_attributes,
       mailslot_identity_secrets_v1(id) AS identity_secrets
FROM workspaces
WHERE name = $1
ORDER BY id
LIMIT 1;

-- get_workspace_by_id --
-- A workspace by its id (read back after a rotation). $1 workspace_id
SELECT id, name, site_id, identity_secret, identity_mode, in_app_enabled,
       active_s, inactive_s, low_s, recent_days, lease_s, identity_hash_allowed, max_token_lifetime_s,
       rate_limits, retention_days, device_attributes,
       mailslot_identity_secrets_v1(id) AS identity_secrets
FROM workspaces
WHERE id = $1;

-- lock_workspace --
-- Lock a workspace row so that no send commits while its settings change. $1 workspace_id
SELECT id FROM workspaces WHERE id = $1 FOR UPDATE;

-- update_workspace --
-- Change settings (NULL keeps a value) and tell every process; turning in-app off recalls every queued and offered message. $1 workspace_id, $2 in_app_enabled, $3 identity_mode, $4 active_s, $5 inactive_s, $6 low_s, $7 recent_days, $8 lease_s, $9 now, $10 rate limits to merge (a null one removes it) or NULL, $11 retention_days, $12 device_attributes, $13 identity_hash_allowed, $14 max_token_lifetime_s
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
        lease_s = coalesce($8, lease_s),
        rate_limits = coalesce(jsonb_strip_nulls(rate_limits || $10::jsonb), rate_limits),
        retention_days = coalesce($11, retention_days),
        device_attributes = coalesce($12::text[], device_attributes),
        identity_hash_allowed = coalesce($13, identity_hash_allowed),
        max_token_lifetime_s = coalesce($14, max_token_lifetime_s)
    WHERE id = $1
    RETURNING id, name, site_id, identity_secret, identity_mode, in_app_enabled,
              active_s, inactive_s, low_s, recent_days, lease_s, rate_limits, retention_days, device_attributes,
              identity_hash_allowed, max_token_lifetime_s
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
    SELECT mailslot_notify_workspace_v1(id) FROM updated
)
SELECT id, name, site_id, identity_secret, identity_mode, in_app_enabled,
       active_s, inactive_s, low_s, recent_days, lease_s, identity_hash_allowed, max_token_lifetime_s,
       rate_limits, retention_days, device_attributes,
       mailslot_identity_secrets_v1(id) AS identity_secrets,
       (SELECT count(*) FROM recalled) AS recalled,
       (SELECT count(*) FROM notified) AS notified
FROM updated;

-- rotate_api_key --
-- Add a key; every other key of the workspace runs out `grace_s` seconds from now (sooner if it already would); keys run out before now are deleted; tell every process. $1 workspace_id, $2 sha256 of the new key, $3 grace_s, $4 now
WITH clock AS (
    SELECT coalesce($4::timestamptz, now()) AS now
),
pruned AS (
    DELETE FROM api_keys k USING clock
    WHERE k.workspace_id = $1 AND k.expires_at <= clock.now
    RETURNING k.id
),
retired AS (
    UPDATE api_keys k
    SET expires_at = least(coalesce(k.expires_at, 'infinity'), clock.now + make_interval(secs => $3::integer))
    FROM clock
    WHERE k.workspace_id = $1 AND (k.expires_at IS NULL OR k.expires_at > clock.now)
    RETURNING k.id
),
inserted AS (
    INSERT INTO api_keys (workspace_id, key_hash, created_at)
    SELECT $1, $2, clock.now FROM clock
    RETURNING id, created_at
),
notified AS (
    SELECT mailslot_notify_workspace_v1($1)
)
SELECT id, created_at,
       (SELECT count(*) FROM pruned) AS pruned,
       (SELECT count(*) FROM retired) AS retired,
       (SELECT count(*) FROM notified) AS notified
FROM inserted;

-- list_api_keys --
-- A workspace's keys that still work at `now`, oldest first (ids and times only: keys are stored hashed). $1 workspace_id, $2 now
SELECT id, created_at, expires_at
FROM api_keys
WHERE workspace_id = $1 AND (expires_at IS NULL OR expires_at > coalesce($2::timestamptz, now()))
ORDER BY id;

-- rotate_identity_secret --
-- Add a secret and make it the one `user_hash` uses; every other secret runs out `grace_s` seconds from now (sooner if it already would); secrets run out before now are deleted; tell every process. $1 workspace_id, $2 kid, $3 secret, $4 grace_s, $5 now
WITH clock AS (
    SELECT coalesce($5::timestamptz, now()) AS now
),
pruned AS (
    DELETE FROM identity_secrets s USING clock
    WHERE s.workspace_id = $1 AND s.expires_at <= clock.now
    RETURNING s.id
),
retired AS (
    UPDATE identity_secrets s
    SET expires_at = least(coalesce(s.expires_at, 'infinity'), clock.now + make_interval(secs => $4::integer))
    FROM clock
    WHERE s.workspace_id = $1 AND (s.expires_at IS NULL OR s.expires_at > clock.now)
    RETURNING s.id
),
inserted AS (
    INSERT INTO identity_secrets (workspace_id, kid, secret, created_at)
    SELECT $1, $2, $3, clock.now FROM clock
    RETURNING id
),
current AS (
    UPDATE workspaces SET identity_secret = $3 WHERE id = $1 RETURNING id
),
notified AS (
    SELECT mailslot_notify_workspace_v1($1)
)
SELECT (SELECT count(*) FROM inserted) AS inserted,
       (SELECT count(*) FROM pruned) AS pruned,
       (SELECT count(*) FROM retired) AS retired,
       (SELECT count(*) FROM current) AS current,
       (SELECT count(*) FROM notified) AS notified;

-- ensure_person_by_external_id --
-- The person with this id, created if new, with the attributes templates read (mailslot_readable_attributes_v1). $1 workspace_id, $2 external_id
INSERT INTO people (workspace_id, external_id)
VALUES ($1, $2)
ON CONFLICT (workspace_id, external_id) DO UPDATE SET external_id = EXCLUDED.external_id
RETURNING id, external_id, email, attributes, device_attributes,
          mailslot_readable_attributes_v1(attributes, device_attributes,
              (SELECT w.device_attributes FROM workspaces w WHERE w.id = $1)) AS readable_attributes;

-- ensure_person_by_email --
-- The person with this email, created if new, with the attributes templates read (mailslot_readable_attributes_v1). $1 workspace_id, $2 lower-cased email
INSERT INTO people (workspace_id, email)
VALUES ($1, $2)
ON CONFLICT (workspace_id, email) DO UPDATE SET email = EXCLUDED.email
RETURNING id, external_id, email, attributes, device_attributes,
          mailslot_readable_attributes_v1(attributes, device_attributes,
              (SELECT w.device_attributes FROM workspaces w WHERE w.id = $1)) AS readable_attributes;

-- get_person --
-- A person by id, or by email when no one has that id. $1 workspace_id, $2 external id or email
SELECT id, external_id, email, attributes, device_attributes
FROM people
WHERE workspace_id = $1 AND (external_id = $2 OR email = lower($2))
ORDER BY (external_id = $2) IS TRUE DESC
LIMIT 1;

-- upsert_person_attributes --
-- Identify from the backend: create the person or merge attributes into the backend's side of theirs, returning how many there now are and their size. $1 workspace_id, $2 external_id, $3 attributes to set, $4 attribute names to remove
INSERT INTO people (workspace_id, external_id, attributes)
VALUES ($1, $2, $3)
ON CONFLICT (workspace_id, external_id) DO UPDATE
SET attributes = (people.attributes - $4::text[]) || EXCLUDED.attributes, updated_at = now()
RETURNING id, external_id, email, attributes, device_attributes,
          (SELECT count(*) FROM jsonb_object_keys(attributes)) AS attribute_count,
          octet_length(attributes::text) AS attribute_bytes;

-- merge_device_attributes --
-- Identify from a device: merge attributes into the device's side of the person it names (by id, or by email when no one has that id), never the backend's; no row: no such person. $1 workspace_id, $2 user (id or email), $3 attributes to set, $4 attribute names to remove
WITH found AS (
    SELECT p.id
    FROM people p
    WHERE p.workspace_id = $1 AND (p.external_id = $2 OR p.email = lower($2))
    ORDER BY (p.external_id = $2) IS TRUE DESC
    LIMIT 1
    FOR UPDATE
)
UPDATE people p
SET device_attributes = (p.device_attributes - $4::text[]) || $3::jsonb, updated_at = now()
FROM found
WHERE p.id = found.id
RETURNING p.id, p.external_id, p.email, p.attributes, p.device_attributes,
          (SELECT count(*) FROM jsonb_object_keys(p.device_attributes)) AS attribute_count,
          octet_length(p.device_attributes::text) AS attribute_bytes;

-- lock_person_by_email --
-- The person who holds an email, locked for linking. $1 workspace_id, $2 lower-cased email
SELECT id, external_id, attributes, device_attributes
FROM people
WHERE workspace_id = $1 AND email = $2
FOR UPDATE;

-- move_person_history --
-- Move one person's messages, tracked events and trigger deliveries to another (identify linking an email-only person), so a once-per-person trigger stays used. $1 to person id, $2 from person id
WITH moved_messages AS (
    UPDATE messages SET person_id = $1 WHERE person_id = $2
),
moved_events AS (
    UPDATE person_events SET person_id = $1 WHERE person_id = $2
)
UPDATE trigger_deliveries d
SET person_id = $1
WHERE d.person_id = $2
  AND NOT EXISTS (SELECT 1 FROM trigger_deliveries mine WHERE mine.person_id = $1 AND mine.trigger_id = d.trigger_id);

-- lock_visitor --
-- The anonymous visitor a device polled as before identify, locked for merging into a person. $1 workspace_id, $2 anonymous visitor id
SELECT id
FROM people
WHERE workspace_id = $1 AND anonymous_id = $2
FOR UPDATE;

-- merge_visitor --
-- After move_person_history: copy a visitor's visit entries to the person (the later entry of each broadcast wins) and keep the later last message. The visitor stays, without messages but with its entries, so a tab still polling as it is not given a `once` visit broadcast again. $1 to person id, $2 visitor's person id
WITH visitor AS MATERIALIZED (
    SELECT id, last_message_at FROM people WHERE id = $2
),
entries AS (
    INSERT INTO visit_entries AS v (broadcast_id, person_id, entered_at)
    SELECT e.broadcast_id, $1, e.entered_at FROM visit_entries e WHERE e.person_id = $2
    ON CONFLICT (broadcast_id, person_id) DO UPDATE SET entered_at = greatest(v.entered_at, excluded.entered_at)
)
UPDATE people p
SET last_message_at = greatest(p.last_message_at, visitor.last_message_at)
FROM visitor
WHERE p.id = $1 AND visitor.last_message_at IS NOT NULL;

-- delete_person --
-- Delete a person that identify merged into another. $1 person id
DELETE FROM people WHERE id = $1;

-- set_person_email --
-- Link (or with NULL, unlink) a person's email. $1 person id, $2 lower-cased email or NULL, $3 attributes and $4 device attributes merged under the person's own
UPDATE people
SET email = $2, attributes = $3::jsonb || attributes, device_attributes = $4::jsonb || device_attributes,
    updated_at = now()
WHERE id = $1
RETURNING id, external_id, email, attributes, device_attributes;

-- send_messages --
-- Queue one message or a batch in one statement (decision 0022), unless the workspace is disabled (then nothing is written): find or create each person (by id, or by lower-cased email), insert the messages whose idempotency key was not used with their `queued` events, and wake each person's devices. One row per item, in order: the new message, or the message an earlier send with the item's key queued (with that send's hash; none when the earlier send committed after this statement began). $1 workspace_id, $2 external ids (NULL where by email), $3 lower-cased emails (NULL where by id), $4 contents, $5 properties, $6 priorities, $7 persistent, $8 campaigns, $9 expires_at (NULL: now + ttl_s), $10 ttl_s, $11 idempotency keys, $12 idempotency hashes, $13 template ids, $14 now
WITH clock AS MATERIALIZED (
    SELECT coalesce($14::timestamptz, now()) AS now
),
workspace AS MATERIALIZED (
    SELECT id FROM workspaces WHERE id = $1 AND in_app_enabled FOR SHARE
),
item AS MATERIALIZED (
    SELECT i.n, i.external_id, i.email, i.content, i.properties, i.priority, i.persistent, i.campaign,
           i.expires_at, i.ttl_s, i.idempotency_key, i.idempotency_hash, i.template_id
    FROM unnest($2::text[], $3::text[], $4::jsonb[], $5::jsonb[], $6::integer[], $7::boolean[], $8::text[],
                $9::timestamptz[], $10::integer[], $11::text[], $12::bytea[], $13::uuid[])
         WITH ORDINALITY AS i (external_id, email, content, properties, priority, persistent, campaign,
                               expires_at, ttl_s, idempotency_key, idempotency_hash, template_id, n)
),
-- A key already used (and visible to this statement's snapshot): that send's message is the answer.
-- LATERAL: one index lookup per keyed item, never a walk over the workspace's messages.
earlier AS MATERIALIZED (
    SELECT item.n, m.id, m.idempotency_hash
    FROM item
    CROSS JOIN LATERAL (
        SELECT m.id, m.idempotency_hash FROM messages m
        WHERE m.workspace_id = $1 AND m.idempotency_key = item.idempotency_key
    ) AS m
    WHERE item.idempotency_key IS NOT NULL
),
-- The message id is chosen here, so that each inserted row maps back to its item.
wanted AS MATERIALIZED (
    SELECT gen_random_uuid() AS message_id, item.n, item.external_id, item.email, item.content, item.properties,
           item.priority, item.persistent, item.campaign, item.expires_at, item.ttl_s, item.idempotency_key,
           item.idempotency_hash, item.template_id
    FROM item, workspace
    WHERE NOT EXISTS (SELECT 1 FROM earlier WHERE earlier.n = item.n)
),
-- The people already known, locked against a merge's delete or a key change until the messages
-- are in (FOR KEY SHARE: concurrent sends to one person do not wait for each other).
found AS MATERIALIZED (
    SELECT p.id, p.external_id, p.email
    FROM people p
    WHERE p.workspace_id = $1 AND (p.external_id = ANY ($2::text[]) OR p.email = ANY ($3::text[]))
    FOR KEY SHARE
),
-- The others, each once, in key order (two batches that create the same people wait in the same
-- order). One created by a concurrent send meanwhile is neither found nor inserted: its items
-- get no row here and go round again.
by_id AS (
    INSERT INTO people (workspace_id, external_id)
    SELECT DISTINCT $1::bigint, w.external_id
    FROM wanted w
    WHERE w.external_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM found f WHERE f.external_id = w.external_id)
    ORDER BY 2
    ON CONFLICT DO NOTHING
    RETURNING id, external_id, email
),
by_email AS (
    INSERT INTO people (workspace_id, email)
    SELECT DISTINCT $1::bigint, w.email
    FROM wanted w
    WHERE w.external_id IS NULL AND NOT EXISTS (SELECT 1 FROM found f WHERE f.email = w.email)
    ORDER BY 2
    ON CONFLICT DO NOTHING
    RETURNING id, external_id, email
),
person AS (
    SELECT id, external_id, email FROM found
    UNION ALL
    SELECT id, external_id, email FROM by_id
    UNION ALL
    SELECT id, external_id, email FROM by_email
),
-- Each wanted item with its person (two equality joins, so that a large batch can hash them).
recipient AS MATERIALIZED (
    SELECT DISTINCT ON (w.n) w.n, w.message_id, w.content, w.properties, w.priority, w.persistent, w.campaign,
           w.expires_at, w.ttl_s, w.idempotency_key, w.idempotency_hash, w.template_id,
           p.person_id, p.person_external_id, p.person_email
    FROM wanted w
    JOIN (
        SELECT w.n, p.id AS person_id, p.external_id AS person_external_id, p.email AS person_email
        FROM wanted w JOIN person p ON p.external_id = w.external_id
        UNION ALL
        SELECT w.n, p.id, p.external_id, p.email
        FROM wanted w JOIN person p ON p.email = w.email
        WHERE w.external_id IS NULL
    ) AS p ON p.n = w.n
    ORDER BY w.n
),
inserted AS (
    INSERT INTO messages (id, workspace_id, person_id, content, properties, priority, persistent, campaign,
                          expires_at, idempotency_key, idempotency_hash, created_at, template_id)
    SELECT r.message_id, $1, r.person_id, r.content, r.properties, r.priority, r.persistent,
           r.campaign, coalesce(r.expires_at, clock.now + make_interval(secs => r.ttl_s)),
           r.idempotency_key, r.idempotency_hash, clock.now, r.template_id
    FROM recipient r, clock
    -- In key order: two statements inserting the same keys wait for each other in the same order,
    -- never in a cycle (coalesced single sends put keys of many callers in one statement).
    ORDER BY r.idempotency_key, r.n
    -- A key used by a send that committed after this statement began: nothing inserted, no row back.
    -- The predicate names the partial unique index (migration 0024); without it, no index matches.
    ON CONFLICT (workspace_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id, person_id, content, properties, priority, persistent, campaign, created_at, expires_at
),
recorded AS (
    INSERT INTO events (workspace_id, message_id, type, at)
    SELECT $1, id, 'queued', created_at FROM inserted
),
-- One wake-up per person; the keys come from the upsert, since a person created by this
-- statement is not yet visible to a function that reads the row (migration 0016).
notified AS (
    SELECT mailslot_notify_person_v1($1, p.person_id, ARRAY[p.person_external_id, p.person_email])
    FROM (SELECT DISTINCT r.person_id, r.person_external_id, r.person_email
          FROM recipient r WHERE r.message_id IN (SELECT id FROM inserted)) AS p
)
-- The new message comes back whole, so a send needs no read-back.
SELECT item.n, (SELECT count(*) FROM workspace) > 0 AS enabled, (SELECT count(*) FROM notified) AS notified,
       i.id, r.person_external_id AS external_id, r.person_email AS email, i.content, i.properties, i.priority, i.persistent, i.campaign,
       i.created_at, i.expires_at,
       e.id AS earlier_id, e.idempotency_hash AS earlier_hash,
       ep.external_id AS earlier_external_id, ep.email AS earlier_email,
       CASE WHEN em.state IN ('queued', 'offered') AND em.expires_at <= clock.now
            THEN 'expired' ELSE em.state END AS earlier_state,
       coalesce(em.content, eb.content) AS earlier_content, em.properties AS earlier_properties,
       em.priority AS earlier_priority, em.persistent AS earlier_persistent, em.campaign AS earlier_campaign,
       em.created_at AS earlier_created_at, em.expires_at AS earlier_expires_at,
       em.device_id AS earlier_device_id, em.lease_expires_at AS earlier_lease_expires_at,
       em.shown_at AS earlier_shown_at
FROM item
CROSS JOIN clock
LEFT JOIN recipient r ON r.n = item.n
LEFT JOIN inserted i ON i.id = r.message_id
LEFT JOIN earlier e ON e.n = item.n
LEFT JOIN messages em ON em.id = e.id
LEFT JOIN people ep ON ep.id = em.person_id
LEFT JOIN broadcasts eb ON eb.id = em.broadcast_id
ORDER BY item.n;

-- list_recipients --
-- The known people among the ids and emails personalized sends name, with the attributes templates read (mailslot_readable_attributes_v1); nothing is written. $1 workspace_id, $2 external ids, $3 lower-cased emails
WITH names AS MATERIALIZED (
    SELECT device_attributes AS names FROM workspaces WHERE id = $1
)
SELECT p.id, p.external_id, p.email, p.attributes, p.device_attributes,
       mailslot_readable_attributes_v1(p.attributes, p.device_attributes, names.names) AS readable_attributes
FROM people p, names
WHERE p.workspace_id = $1 AND (p.external_id = ANY ($2::text[]) OR p.email = ANY ($3::text[]));

-- get_message --
-- One message of a workspace with its person; queued or offered past expires_at reads as expired. $1 workspace_id, $2 message id, $3 now
SELECT m.id, p.external_id, p.email,
       CASE WHEN m.state IN ('queued', 'offered') AND m.expires_at <= coalesce($3::timestamptz, now())
            THEN 'expired' ELSE m.state END AS state,
       coalesce(m.content, b.content) AS content, m.properties, m.priority, m.persistent, m.campaign,
       m.created_at, m.expires_at, m.device_id, m.lease_expires_at, m.shown_at
FROM messages m
JOIN people p ON p.id = m.person_id
LEFT JOIN broadcasts b ON b.id = m.broadcast_id
WHERE m.workspace_id = $1 AND m.id = $2;

-- list_message_events --
-- A message's events, oldest first; a broadcast entry's `queued` event is its created_at (entries record none since decision 0022; older ones did). $1 message id
SELECT type, at, device_id, action
FROM (
    SELECT 0 AS id, 'queued' AS type, m.created_at AS at, NULL::text AS device_id, NULL::text AS action
    FROM messages m
    WHERE m.id = $1 AND m.broadcast_id IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM events e WHERE e.message_id = m.id AND e.type = 'queued')
    UNION ALL
    SELECT id, type, at, device_id, action FROM events WHERE message_id = $1
) AS recorded
ORDER BY id;

-- list_person_messages --
-- A person's queue first, then their most recent messages. $1 person id, $2 at most this many, $3 now
SELECT m.id, p.external_id, p.email,
       CASE WHEN m.state IN ('queued', 'offered') AND m.expires_at <= coalesce($3::timestamptz, now())
            THEN 'expired' ELSE m.state END AS state,
       coalesce(m.content, b.content) AS content, m.properties, m.priority, m.persistent, m.campaign,
       m.created_at, m.expires_at, m.device_id, m.lease_expires_at, m.shown_at
FROM messages m
JOIN people p ON p.id = m.person_id
LEFT JOIN broadcasts b ON b.id = m.broadcast_id
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
-- The poll: one claim for one device (mailslot_claim_messages_v2, migration 0028: claim under a lease, enter due visit broadcasts, record offers and expiries, return what the device holds with the tier's facts and whether anything else is pending). $1 workspace_id, $2 user (id or email; NULL for a visitor), $3 device_id, $4 now, $5 lease_s, $6 at most this many new claims, $7 anonymous visitor id (NULL for a user)
SELECT c.now, c.person_id, c.last_message_at, c.pending, c.showing, c.visiting, c.pending_elsewhere, c.id,
       c.content, c.properties, c.priority, c.persistent, c.expires_at, c.campaign, c.offered, c.lease_expires_at
FROM mailslot_claim_messages_v2($1, $2, $3, $4::timestamptz, $5, $6, $7) AS c;

-- claim_message_batch --
-- Many polls' claims in one statement and one commit (decision 0037): mailslot_claim_messages_v2 once per poll, one after another, each seeing what the earlier ones wrote; rows tagged with the poll's place (`item`, from 1) and in each poll's order (`n`). $1 workspace ids, $2 users (NULL for a visitor), $3 device ids, $4 nows (NULL: the database's), $5 lease_s, $6 claim limits, $7 anonymous visitor ids (NULL for a user)
WITH polls AS MATERIALIZED (
    SELECT u.item, u.workspace_id, u.user_key, u.device_id, u.at, u.lease_s, u.claim_limit, u.anonymous_id
    FROM unnest($1::bigint[], $2::text[], $3::text[], $4::timestamptz[], $5::integer[], $6::integer[], $7::text[])
         WITH ORDINALITY AS u (workspace_id, user_key, device_id, at, lease_s, claim_limit, anonymous_id, item)
    -- The person as the claim will find them, for the lock order only (a visitor not yet created: none).
    LEFT JOIN LATERAL (
        SELECT p.id FROM people p
        WHERE p.workspace_id = u.workspace_id
          AND (p.external_id = u.user_key OR p.email = lower(u.user_key) OR p.anonymous_id = u.anonymous_id)
        ORDER BY (p.external_id = u.user_key) IS TRUE DESC
        LIMIT 1
    ) AS person ON true
    -- Calls run in this order and keep their row locks (visit entries, a new visitor's row) until the
    -- commit: every process takes them person by person (visitors not yet created by anonymous id)
    -- in one order, so two batches cannot deadlock on them (a person the two saw differently can
    -- still; the caller retries a deadlock). One person's polls keep their order of arrival.
    ORDER BY person.id NULLS LAST, CASE WHEN person.id IS NULL THEN u.workspace_id END,
             CASE WHEN person.id IS NULL THEN u.anonymous_id END, u.item
)
SELECT polls.item, c.n, c.now, c.person_id, c.last_message_at, c.pending, c.showing, c.visiting,
       c.pending_elsewhere, c.id, c.content, c.properties, c.priority, c.persistent, c.expires_at, c.campaign,
       c.offered, c.lease_expires_at
FROM polls
CROSS JOIN LATERAL mailslot_claim_messages_v2(
    polls.workspace_id, polls.user_key, polls.device_id, polls.at, polls.lease_s, polls.claim_limit,
    polls.anonymous_id
) WITH ORDINALITY AS c (now, person_id, last_message_at, pending, showing, visiting, pending_elsewhere, id,
                        content, properties, priority, persistent, expires_at, campaign, offered,
                        lease_expires_at, n);

-- record_device_events --
-- Apply the reports (shown, action, dismissed) of one or more device requests of one workspace, in order (request by request, each request's reports in its order), in one statement: each to a message offered or shown to the reporting device; a repeated report is recorded once; the workspace's first `shown` completes its setup. One row per report, in order. $1 workspace_id, $2 message ids, $3 types, $4 action names (NULL: none), $5 each report's request (1-based index into $6-$9), $6 each request's device_id, $7 each request's user (id or email; NULL for a visitor), $8 each request's anonymous visitor id (NULL for a user), $9 each request's platform, $10 now
WITH clock AS (
    SELECT coalesce($10::timestamptz, now()) AS now
),
-- Each request's device and person (looked up as the claim does), once per request.
request AS MATERIALIZED (
    SELECT q.g, q.device_id, q.platform, person.id AS person_id
    FROM unnest($6::text[], $7::text[], $8::text[], $9::text[]) WITH ORDINALITY AS q (device_id, usr, anonymous_id, platform, g)
    LEFT JOIN LATERAL (
        SELECT p.id
        FROM people p
        WHERE p.workspace_id = $1 AND (p.external_id = q.usr OR p.email = lower(q.usr) OR p.anonymous_id = q.anonymous_id)
        ORDER BY (p.external_id = q.usr) IS TRUE DESC
        LIMIT 1
    ) person ON true
),
report AS MATERIALIZED (
    SELECT r.n, r.message_id, r.type, r.action, q.g, q.device_id, q.person_id
    FROM unnest($2::uuid[], $3::text[], $4::text[], $5::int[]) WITH ORDINALITY AS r (message_id, type, action, g, n)
    JOIN request q ON q.g = r.g
),
-- The messages offered or shown to a device that reports them, locked in id order, so two
-- reports of the same messages cannot deadlock.
target AS MATERIALIZED (
    SELECT m.id, m.workspace_id, m.state, m.person_id, m.device_id
    FROM messages m
    WHERE m.id = ANY ($2::uuid[])
      AND m.workspace_id = $1
      AND m.state IN ('offered', 'shown', 'dismissed')
      AND EXISTS (SELECT 1 FROM report r
                  WHERE r.message_id = m.id AND r.person_id = m.person_id AND r.device_id = m.device_id)
    ORDER BY m.id
    FOR UPDATE OF m
),
-- Reports apply in order: an action needs the message shown, by now or by an earlier report of
-- its device (a report of another device is refused and counts for nothing).
judged AS MATERIALIZED (
    SELECT r.n, r.g, r.message_id, r.type, r.action, r.device_id, t.workspace_id, t.id IS NOT NULL AS matched,
           t.id IS NOT NULL
           AND (r.type <> 'action' OR t.state <> 'offered'
                OR coalesce(bool_or(t.id IS NOT NULL AND r.type <> 'action') OVER (
                       PARTITION BY r.message_id ORDER BY r.n
                       ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), false)) AS accepted
    FROM report r
    LEFT JOIN target t ON t.id = r.message_id AND t.person_id = r.person_id AND t.device_id = r.device_id
),
-- Where each message ends: offered -> shown -> dismissed, never back.
final AS (
    SELECT t.id, t.state AS initial,
           CASE WHEN t.state = 'dismissed' OR bool_or(j.type = 'dismissed') THEN 'dismissed'
                WHEN t.state = 'shown' OR bool_or(j.type = 'shown') THEN 'shown'
                ELSE t.state END AS state,
           t.state = 'offered'
           AND (array_agg(j.type ORDER BY j.n) FILTER (WHERE j.type <> 'action'))[1] = 'shown' AS newly_shown,
           bool_or(j.type = 'action' AND j.accepted) AS acted
    FROM target t JOIN judged j ON j.message_id = t.id AND j.matched
    GROUP BY t.id, t.state
),
-- A state change, or a first action on a shown message that is not persistent: that makes it
-- final (closed_at), which starts its retention period; a persistent one stays until dismissed.
changed AS (
    UPDATE messages m
    SET state = final.state,
        shown_at = CASE WHEN final.state <> final.initial THEN coalesce(m.shown_at, clock.now) ELSE m.shown_at END,
        lease_expires_at = CASE WHEN final.state <> final.initial THEN NULL ELSE m.lease_expires_at END,
        closed_at = CASE WHEN final.state = 'dismissed' AND final.initial <> 'dismissed' THEN clock.now
                         WHEN final.state = 'shown' AND final.acted AND NOT m.persistent
                              AND m.closed_at IS NULL THEN clock.now
                         ELSE m.closed_at END
    FROM final, clock
    WHERE m.id = final.id
      AND (final.state <> final.initial
           OR (final.state = 'shown' AND final.acted AND NOT m.persistent AND m.closed_at IS NULL))
    RETURNING m.id
),
recorded AS (
    INSERT INTO events (workspace_id, message_id, type, device_id, action, at)
    SELECT j.workspace_id, j.message_id, j.type, j.device_id, j.action, clock.now
    FROM judged j, clock
    WHERE j.accepted
    ORDER BY j.n
    ON CONFLICT DO NOTHING
),
-- Setup status: only a newly accepted `shown` while none was recorded, with the platform of the
-- request that reported the first of them; afterwards the WHERE matches no row, so later reports
-- take no workspace lock. SKIP LOCKED: while a broadcast chunk or a settings change holds the
-- workspace row, this report leaves the setup step to a later one instead of waiting (every
-- device's report would queue behind it, each holding a connection).
first_shown AS (
    UPDATE workspaces w
    SET first_shown_at = clock.now, first_shown_platform = shown.platform
    FROM clock,
         (SELECT q.platform
          FROM judged j
          JOIN final f ON f.id = j.message_id AND f.newly_shown
          JOIN request q ON q.g = j.g
          WHERE j.accepted AND j.type = 'shown'
          ORDER BY j.n
          LIMIT 1) shown
    WHERE w.id = (SELECT u.id FROM workspaces u
                  WHERE u.id = $1 AND u.first_shown_at IS NULL AND EXISTS (SELECT 1 FROM final WHERE final.newly_shown)
                  FOR NO KEY UPDATE SKIP LOCKED)
)
SELECT j.n, j.accepted, EXISTS (SELECT 1 FROM messages m WHERE m.id = j.message_id AND m.workspace_id = $1) AS known
FROM judged j
ORDER BY j.n;

-- expire_messages --
-- Record as expired a batch of queued or offered messages past expires_at, in any workspace (walked workspace by workspace on messages_pending_by_workspace_expiry, oldest first within each). $1 now, $2 batch size
WITH clock AS MATERIALIZED (
    SELECT coalesce($1::timestamptz, now()) AS now
),
due AS (
    SELECT m.id
    FROM workspaces w
    CROSS JOIN clock
    CROSS JOIN LATERAL (
        SELECT m.id
        FROM messages m
        WHERE m.workspace_id = w.id AND m.state IN ('queued', 'offered') AND m.expires_at <= clock.now
        ORDER BY m.expires_at
        LIMIT $2
        FOR UPDATE OF m SKIP LOCKED
    ) m
    LIMIT $2
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

-- delete_retired_messages --
-- Retention: delete one batch of messages final for longer than their workspace's retention_days (shown: since its first action or its expiry; dismissed, expired, recalled: since then), and their events (no foreign key since 0005), folding each person's latest message time and each broadcast's counts into the summaries that outlive them; skips rows another transaction holds, and does nothing (held false) while another process sweeps. $1 now, $2 batch size, $3 advisory lock key
WITH clock AS MATERIALIZED (
    SELECT coalesce($1::timestamptz, now()) AS now
),
-- One sweeper at a time across processes; a transaction lock, so it ends with the statement.
sweeper AS MATERIALIZED (
    SELECT pg_try_advisory_xact_lock($3) AS held
),
doomed AS MATERIALIZED (
    SELECT m.id, m.person_id, m.broadcast_id, m.state, m.created_at,
           EXISTS (SELECT 1 FROM events e WHERE e.message_id = m.id AND e.type = 'action') AS acted
    FROM sweeper
    CROSS JOIN workspaces w
    CROSS JOIN clock
    CROSS JOIN LATERAL (
        SELECT m.id, m.person_id, m.broadcast_id, m.state, m.created_at
        FROM messages m
        WHERE m.workspace_id = w.id
          AND m.state IN ('shown', 'dismissed', 'expired', 'recalled')
          AND least(m.closed_at, m.expires_at) <= clock.now - make_interval(days => w.retention_days)
        LIMIT $2
        FOR UPDATE OF m SKIP LOCKED
    ) m
    WHERE sweeper.held
    LIMIT $2
),
people_folded AS (
    UPDATE people p
    SET last_message_at = greatest(p.last_message_at, d.latest)
    FROM (SELECT person_id, max(created_at) AS latest FROM doomed GROUP BY person_id) d
    WHERE p.id = d.person_id
),
broadcasts_folded AS (
    UPDATE broadcasts b
    SET retired_total = b.retired_total + d.total,
        retired_shown = b.retired_shown + d.shown,
        retired_action = b.retired_action + d.action,
        retired_dismissed = b.retired_dismissed + d.dismissed,
        retired_expired = b.retired_expired + d.expired,
        retired_recalled = b.retired_recalled + d.recalled
    FROM (SELECT broadcast_id, count(*) AS total,
                 count(*) FILTER (WHERE state = 'shown') AS shown,
                 count(*) FILTER (WHERE acted) AS action,
                 count(*) FILTER (WHERE state = 'dismissed') AS dismissed,
                 count(*) FILTER (WHERE state = 'expired') AS expired,
                 count(*) FILTER (WHERE state = 'recalled') AS recalled
          FROM doomed WHERE broadcast_id IS NOT NULL GROUP BY broadcast_id) d
    WHERE b.id = d.broadcast_id
),
events_deleted AS (
    DELETE FROM events e USING doomed WHERE e.message_id = doomed.id
),
deleted AS (
    DELETE FROM messages m USING doomed WHERE m.id = doomed.id
    RETURNING m.id
)
SELECT (SELECT held FROM sweeper) AS held, (SELECT count(*) FROM deleted) AS deleted;

-- check_ready --
-- Readiness probe: the database answers.
SELECT 1;

-- check_superuser --
-- Whether this connection's role is a superuser (serve warns: the gateway needs no such power).
SELECT rolsuper FROM pg_roles WHERE rolname = current_user;

-- create_broadcast --
-- Record a broadcast before its messages are queued. $1 workspace_id, $2 audience, $3 content, $4 properties, $5 priority, $6 persistent, $7 campaign, $8 expires_at or NULL, $9 ttl_s, $10 idempotency_key, $11 idempotency_hash, $12 now, $13 a visit broadcast's end (NULL: not one), $14 its frequency in seconds (NULL: once)
INSERT INTO broadcasts (workspace_id, audience, content, properties, priority, persistent, campaign,
                        expires_at, ttl_s, idempotency_key, idempotency_hash, created_at,
                        visit_ends_at, visit_every_s)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, coalesce($12::timestamptz, now()), $13, $14)
ON CONFLICT (workspace_id, idempotency_key) DO NOTHING
RETURNING id;

-- open_visit_broadcast --
-- A visit broadcast queues nothing at send: unless the workspace is disabled, wake its held polls (and drop every process's "nothing pending"), so visitors enter it at once. $1 workspace_id
WITH workspace AS (
    SELECT id FROM workspaces WHERE id = $1 AND in_app_enabled FOR SHARE
),
notified AS (
    SELECT mailslot_notify_broadcast_v1($1) FROM workspace
)
SELECT (SELECT count(*) FROM workspace) > 0 AS enabled,
       NULL::integer AS queued,
       (SELECT count(*) FROM notified) AS notified;

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

-- plan_broadcast --
-- Split a plain broadcast's audience into chunks of people by id (decision 0031), unless the workspace is disabled: a first chunk of the $6 lowest ids, then the rest of the id range in equal spans, as many as $7 connections queue at once and (for an even spread of ids) none over $8 people. The filter is applied when each chunk is queued. $1 workspace_id, $2 broadcast id, $3 external ids, $4 lower-cased emails, $5 everyone or a filter, $6 first chunk's size, $7 connections, $8 largest chunk
WITH workspace AS (
    SELECT id FROM workspaces WHERE id = $1 AND in_app_enabled FOR SHARE
),
-- Read twice, never kept: counted, then (in id order, people_by_workspace) its first $6 ids.
audience AS NOT MATERIALIZED (
    SELECT p.id FROM people p WHERE $5::boolean AND p.workspace_id = $1
    UNION ALL
    SELECT p.id FROM people p WHERE p.workspace_id = $1 AND p.external_id = ANY ($3::text[])
    UNION ALL
    SELECT p.id FROM people p WHERE p.workspace_id = $1 AND p.email = ANY ($4::text[])
),
total AS MATERIALIZED (
    SELECT count(*) AS people, min(a.id) AS lo, max(a.id) AS hi
    FROM audience a
    WHERE EXISTS (SELECT 1 FROM workspace)
),
head AS MATERIALIZED (
    SELECT max(f.id) AS last
    FROM (SELECT h.id
          FROM ((SELECT p.id FROM people p WHERE $5::boolean AND p.workspace_id = $1 ORDER BY p.id LIMIT $6::integer)
                UNION ALL
                SELECT p.id FROM people p
                WHERE p.workspace_id = $1 AND (p.external_id = ANY ($3::text[]) OR p.email = ANY ($4::text[]))) h
          ORDER BY h.id
          LIMIT $6::integer) f
),
-- After the first chunk: k spans of ids, a multiple of the connections, each with at most $8
-- people if the ids are spread evenly.
sized AS MATERIALIZED (
    SELECT total.people, total.lo, total.hi, head.last,
           $7::integer * ceil(ceil(greatest(total.people - $6::integer, 1)::numeric / $8::integer)
                              / $7::integer)::integer AS k
    FROM total, head
    WHERE total.people > 0
),
chunked AS (
    INSERT INTO broadcast_chunks (broadcast_id, n, first_person_id, last_person_id)
    SELECT $2::uuid, 0, sized.lo, sized.last FROM sized
    UNION ALL
    SELECT $2::uuid, i, sized.last + 1 + (sized.hi - sized.last) * (i - 1) / sized.k,
           sized.last + (sized.hi - sized.last) * i / sized.k
    FROM sized, generate_series(1, sized.k) AS i
    WHERE sized.people > $6::integer
    RETURNING n
)
SELECT (SELECT count(*) FROM workspace) > 0 AS enabled,
       (SELECT count(*) FROM chunked) AS chunks,
       coalesce((SELECT people FROM total), 0) AS people;

-- queue_broadcast --
-- Queue the next chunk of a plain broadcast that no other connection holds, in one set-based statement (content stays on the broadcast; entries record no `queued` event: their created_at is it), and wake the workspace's devices with one notification, so each chunk is claimable as it commits. A chunk of a recalled broadcast or a disabled workspace is done with nothing queued. $1 workspace_id, $2 broadcast id, $3 external ids, $4 lower-cased emails, $5 everyone, $6 now, $7 attribute filter as jsonpath or NULL, $8 the filter's variables
WITH clock AS (
    SELECT coalesce($6::timestamptz, now()) AS now
),
chunk AS (
    SELECT c.n, c.first_person_id, c.last_person_id
    FROM broadcast_chunks c
    WHERE c.broadcast_id = $2 AND c.done_at IS NULL
    ORDER BY c.n
    LIMIT 1
    FOR UPDATE SKIP LOCKED
),
workspace AS (
    SELECT id FROM workspaces WHERE id = $1 AND in_app_enabled FOR SHARE
),
-- KEY SHARE: chunks on several connections share it, and a recall (FOR UPDATE) waits for them.
broadcast AS (
    SELECT b.id, b.properties, b.priority, b.persistent, b.campaign,
           -- From the send's time, so that every chunk's entries expire together.
           coalesce(b.expires_at, b.created_at + make_interval(secs => b.ttl_s)) AS expires_at
    FROM broadcasts b, workspace
    WHERE b.id = $2 AND b.workspace_id = workspace.id AND b.status = 'queued'
    FOR KEY SHARE OF b
),
-- One time-ordered random id per statement; each entry's id is it plus the person's offset in the
-- chunk (decision 0040): no random bytes per entry (PostgreSQL reads /dev/urandom for each, three
-- system calls), and the chunk's entries form one ascending run of the primary key, apart from a
-- concurrent chunk's. Variant bits kept, the bit below them cleared so the sum never carries into them.
ids AS MATERIALIZED (
    SELECT substr(h.hex, 1, 16) AS hi,
           ('x' || substr(h.hex, 17, 16))::bit(64)::bigint & x'9fffffffffffffff'::bigint AS lo
    FROM (SELECT replace(mailslot_entry_id_v1()::text, '-', '') AS hex) h
),
audience AS (
    SELECT p.id, p.id - chunk.first_person_id AS offset_in_chunk FROM people p, chunk
    WHERE p.workspace_id = $1 AND p.id BETWEEN chunk.first_person_id AND chunk.last_person_id
      AND ($5::boolean
           OR p.external_id = ANY ($3::text[])
           OR p.email = ANY ($4::text[])
           OR ($7::jsonpath IS NOT NULL
               AND jsonb_path_match(mailslot_readable_attributes_v1(p.attributes, p.device_attributes,
                                        (SELECT w.device_attributes FROM workspaces w WHERE w.id = $1)),
                                    $7::jsonpath, $8::jsonb, true)))
),
inserted AS (
    INSERT INTO messages (id, workspace_id, person_id, broadcast_id, content, properties, priority, persistent,
                          campaign, expires_at, created_at)
    -- NULL content: every entry shows the broadcast's, stored once on the broadcast.
    SELECT (ids.hi || to_hex(ids.lo + audience.offset_in_chunk))::uuid, $1, audience.id, broadcast.id, NULL,
           broadcast.properties, broadcast.priority, broadcast.persistent, broadcast.campaign, broadcast.expires_at,
           clock.now
    FROM audience, broadcast, clock, ids
    RETURNING id
),
-- No `queued` event per entry: an entry's created_at is when it was queued, and the readers of
-- events show it as its `queued` event (decision 0022); per-entry events start with `offered`.
counted AS (
    SELECT count(*) AS queued FROM inserted
),
done AS (
    UPDATE broadcast_chunks c SET done_at = clock.now, queued = counted.queued
    FROM chunk, counted, clock
    WHERE c.broadcast_id = $2 AND c.n = chunk.n
    RETURNING c.n
),
notified AS (
    SELECT mailslot_notify_broadcast_v1($1) FROM counted
    WHERE counted.queued > 0
)
SELECT (SELECT n FROM done) AS chunk,
       (SELECT count(*) FROM broadcast) > 0 AS open,
       (SELECT queued FROM counted) AS queued,
       (SELECT count(*) FROM notified) AS notified;

-- finish_broadcast --
-- Once no chunk of a broadcast's send is left (a broadcast without chunks is left alone), record how many entries the send queued (the sum of its chunks) and say whether the workspace is still enabled. $1 workspace_id, $2 broadcast id
WITH totals AS (
    SELECT count(*) AS chunks, count(*) FILTER (WHERE c.done_at IS NULL) AS left_over,
           coalesce(sum(c.queued), 0)::integer AS queued
    FROM broadcast_chunks c
    WHERE c.broadcast_id = $2
),
updated AS (
    UPDATE broadcasts b SET queued = totals.queued
    FROM totals
    WHERE b.workspace_id = $1 AND b.id = $2 AND totals.chunks > 0 AND totals.left_over = 0
    RETURNING b.queued
)
SELECT (SELECT queued FROM updated) AS queued,
       (SELECT left_over FROM totals) AS left_over,
       EXISTS (SELECT 1 FROM workspaces w WHERE w.id = $1 AND w.in_app_enabled) AS enabled;

-- get_broadcast --
-- A broadcast of a workspace with live counts of its messages by state (plus those of entries retention deleted) (queued or offered past expires_at count as expired) and of those with an action. $1 workspace_id, $2 broadcast id, $3 now
WITH clock AS (
    SELECT coalesce($3::timestamptz, now()) AS now
)
SELECT b.id, b.status, b.audience, b.queued, b.sends, b.campaign, b.created_at,
       coalesce(b.last_sent_at, b.created_at) AS last_sent_at, b.recalled_at, b.idempotency_hash,
       -- Entries the retention sweep deleted count as they were when deleted (final states only).
       c.total + b.retired_total AS total, c.n_queued, c.n_offered, c.n_shown + b.retired_shown AS n_shown,
       c.n_action + b.retired_action AS n_action, c.n_dismissed + b.retired_dismissed AS n_dismissed,
       c.n_expired + b.retired_expired AS n_expired, c.n_recalled + b.retired_recalled AS n_recalled
FROM broadcasts b
CROSS JOIN clock
CROSS JOIN LATERAL (
    SELECT count(*) AS total,
           count(*) FILTER (WHERE m.state = 'queued' AND m.expires_at > clock.now) AS n_queued,
           count(*) FILTER (WHERE m.state = 'offered' AND m.expires_at > clock.now) AS n_offered,
           count(*) FILTER (WHERE m.state = 'shown') AS n_shown,
           -- An action can only be reported on a shown message, which then stays shown or dismissed.
           count(*) FILTER (WHERE m.state IN ('shown', 'dismissed')
                              AND EXISTS (SELECT 1 FROM events e
                                          WHERE e.message_id = m.id AND e.type = 'action')) AS n_action,
           count(*) FILTER (WHERE m.state = 'dismissed') AS n_dismissed,
           count(*) FILTER (WHERE m.state = 'expired'
                              OR (m.state IN ('queued', 'offered') AND m.expires_at <= clock.now)) AS n_expired,
           count(*) FILTER (WHERE m.state = 'recalled') AS n_recalled
    FROM messages m
    WHERE m.broadcast_id = b.id
) c
WHERE b.workspace_id = $1 AND b.id = $2;

-- get_broadcast_id_by_idempotency_key --
-- The broadcast an earlier request with this key created. $1 workspace_id, $2 idempotency_key
SELECT id FROM broadcasts WHERE workspace_id = $1 AND idempotency_key = $2;

-- import_people --
-- Create people in bulk from external ids, skipping known ones (operators and the bench). $1 workspace_id, $2 external ids
INSERT INTO people (workspace_id, external_id)
SELECT $1, unnest($2::text[])
ON CONFLICT DO NOTHING;

-- ===== event triggers and tracked events =====

-- create_trigger --
-- Define a trigger; with a template, only if the template is the workspace's (no row: unknown template). $1 workspace_id, $2 event name, $3 compiled filter or NULL, $4 message, $5 reentry, $6 template id or NULL, $7 now
INSERT INTO triggers (workspace_id, event, filter, message, reentry, created_at)
SELECT $1, $2, $3, $4, $5, coalesce($7::timestamptz, now())
WHERE $6::uuid IS NULL
   OR EXISTS (SELECT 1 FROM templates WHERE workspace_id = $1 AND id = $6::uuid)
RETURNING id, event, filter, message, reentry, enabled, created_at;

-- list_triggers --
-- A workspace's triggers, enabled or not, oldest first. $1 workspace_id
SELECT id, event, filter, message, reentry, enabled, created_at
FROM triggers
WHERE workspace_id = $1
ORDER BY created_at, id;

-- disable_trigger --
-- Disable a trigger for good (it is kept for the messages it queued); no row: unknown. $1 workspace_id, $2 trigger id
UPDATE triggers SET enabled = false
WHERE workspace_id = $1 AND id = $2
RETURNING id, event, filter, message, reentry, enabled, created_at;

-- record_person_event --
-- Record an event a person did (creating the person if new: by email with $8, else by id) and return the person, with the attributes filters and templates read (mailslot_readable_attributes_v1), and every enabled trigger of that event whose filter matches, skipping `once` triggers already delivered to them; no trigger: one row with NULL trigger_id. $1 workspace_id, $2 person id (or, with $3, email), $3 also match people by email, $4 event name, $5 event data, $6 source, $7 now, $8 a new person is known by the email $2 (not by it as an id)
WITH clock AS (
    SELECT coalesce($7::timestamptz, now()) AS now
),
found AS (
    SELECT p.id, p.external_id, p.email, p.attributes, p.device_attributes
    FROM people p
    WHERE p.workspace_id = $1 AND (p.external_id = $2 OR ($3::boolean AND p.email = lower($2)))
    ORDER BY (p.external_id = $2) IS TRUE DESC
    LIMIT 1
),
created_by_id AS (
    INSERT INTO people (workspace_id, external_id)
    SELECT $1, $2 WHERE NOT $8::boolean AND NOT EXISTS (SELECT 1 FROM found)
    ON CONFLICT (workspace_id, external_id) DO UPDATE SET external_id = EXCLUDED.external_id
    RETURNING id, external_id, email, attributes, device_attributes
),
created_by_email AS (
    INSERT INTO people (workspace_id, email)
    SELECT $1, lower($2) WHERE $8::boolean AND NOT EXISTS (SELECT 1 FROM found)
    ON CONFLICT (workspace_id, email) DO UPDATE SET email = EXCLUDED.email
    RETURNING id, external_id, email, attributes, device_attributes
),
person AS (
    SELECT one.id, one.external_id, one.email, one.attributes,
           mailslot_readable_attributes_v1(one.attributes, one.device_attributes,
               (SELECT w.device_attributes FROM workspaces w WHERE w.id = $1)) AS readable
    FROM (
        SELECT id, external_id, email, attributes, device_attributes FROM found
        UNION ALL
        SELECT id, external_id, email, attributes, device_attributes FROM created_by_id
        UNION ALL
        SELECT id, external_id, email, attributes, device_attributes FROM created_by_email
    ) AS one
),
recorded AS (
    INSERT INTO person_events (workspace_id, person_id, name, data, source, at)
    SELECT $1, person.id, $4, $5, $6, clock.now FROM person, clock
)
SELECT person.id AS person_id, person.external_id, person.email, person.attributes,
       person.readable AS readable_attributes,
       t.id AS trigger_id, t.reentry, t.message,
       tpl.content AS template_content, tpl.properties AS template_properties
FROM person
LEFT JOIN triggers t
       ON t.workspace_id = $1 AND t.event = $4 AND t.enabled
      AND (t.filter IS NULL
           OR jsonb_path_match(person.readable, (t.filter ->> 'path')::jsonpath, t.filter -> 'vars', true))
      AND (t.reentry = 'every_time'
           OR NOT EXISTS (SELECT 1 FROM trigger_deliveries d WHERE d.trigger_id = t.id AND d.person_id = person.id))
LEFT JOIN templates tpl
       ON tpl.workspace_id = $1 AND tpl.id = (t.message ->> 'template_id')::uuid
ORDER BY t.created_at, t.id;

-- queue_triggered_messages --
-- Queue a person's triggered messages unless the workspace is disabled: a `once` trigger's message only if its delivery row is new, so exactly one concurrent event wins; record the queued events and wake the person's devices. $1 workspace_id, $2 person id, $3 JSON array of {message_id, trigger_id, template_id, once, content, properties, priority, persistent, campaign, ttl_s}, $4 now
WITH clock AS (
    SELECT coalesce($4::timestamptz, now()) AS now
),
workspace AS (
    SELECT id FROM workspaces WHERE id = $1 AND in_app_enabled FOR SHARE
),
wanted AS (
    SELECT w.message_id, w.trigger_id, w.template_id, w.once, w.content, w.properties, w.priority,
           w.persistent, w.campaign, w.ttl_s
    FROM jsonb_to_recordset($3::jsonb) AS w(message_id uuid, trigger_id uuid, template_id uuid, once boolean,
                                            content jsonb, properties jsonb, priority integer,
                                            persistent boolean, campaign text, ttl_s integer)
    JOIN triggers t ON t.id = w.trigger_id AND t.workspace_id = $1 AND t.enabled
    CROSS JOIN workspace
),
delivered AS (
    INSERT INTO trigger_deliveries (trigger_id, person_id, message_id, at)
    SELECT wanted.trigger_id, $2, wanted.message_id, clock.now FROM wanted, clock WHERE wanted.once
    ON CONFLICT (trigger_id, person_id) DO NOTHING
    RETURNING message_id
),
inserted AS (
    INSERT INTO messages (id, workspace_id, person_id, trigger_id, template_id, content, properties, priority,
                          persistent, campaign, expires_at, created_at)
    SELECT wanted.message_id, $1, $2, wanted.trigger_id, wanted.template_id, wanted.content, wanted.properties,
           wanted.priority, wanted.persistent, wanted.campaign,
           clock.now + make_interval(secs => wanted.ttl_s), clock.now
    FROM wanted, clock
    WHERE NOT wanted.once OR wanted.message_id IN (SELECT message_id FROM delivered)
    RETURNING id, workspace_id, created_at
),
recorded AS (
    INSERT INTO events (workspace_id, message_id, type, at)
    SELECT workspace_id, id, 'queued', created_at FROM inserted
),
notified AS (
    SELECT mailslot_notify_queued_v1($1, $2) WHERE EXISTS (SELECT 1 FROM inserted)
)
SELECT (SELECT count(*) FROM workspace) > 0 AS enabled,
       ARRAY(SELECT id FROM inserted) AS queued,
       (SELECT count(*) FROM notified) AS notified;

-- ===== broadcasts =====

-- list_broadcast_audience --
-- The people of a broadcast's audience with what personalization needs (`attributes`: as filters and templates read them, mailslot_readable_attributes_v1), in one query. $1 workspace_id, $2 external ids, $3 lower-cased emails, $4 everyone, $5 attribute filter as jsonpath or NULL, $6 the filter's variables
WITH names AS MATERIALIZED (
    SELECT device_attributes AS names FROM workspaces WHERE id = $1
),
audience AS (
    SELECT p.id, p.external_id, p.email, p.attributes, p.device_attributes
    FROM people p WHERE $4::boolean AND p.workspace_id = $1
    UNION ALL
    SELECT p.id, p.external_id, p.email, p.attributes, p.device_attributes FROM people p
    WHERE p.workspace_id = $1 AND p.external_id = ANY ($2::text[])
    UNION ALL
    SELECT p.id, p.external_id, p.email, p.attributes, p.device_attributes FROM people p
    WHERE p.workspace_id = $1 AND p.email = ANY ($3::text[])
    UNION ALL
    SELECT p.id, p.external_id, p.email, p.attributes, p.device_attributes FROM people p, names
    WHERE $5::jsonpath IS NOT NULL AND p.workspace_id = $1
      AND jsonb_path_match(mailslot_readable_attributes_v1(p.attributes, p.device_attributes, names.names),
                           $5::jsonpath, $6::jsonb, true)
)
SELECT audience.id, audience.external_id, audience.email,
       mailslot_readable_attributes_v1(audience.attributes, audience.device_attributes, names.names) AS attributes
FROM audience, names;

-- queue_rendered_broadcast --
-- Queue a personalized broadcast: one message per (person, rendered content) pair in one set-based statement (entries record no `queued` event: their created_at is it), and wake the workspace's devices with one notification. $1 workspace_id, $2 broadcast id, $3 person ids, $4 their rendered contents (same order), $5 now
WITH clock AS (
    SELECT coalesce($5::timestamptz, now()) AS now
),
workspace AS (
    SELECT id FROM workspaces WHERE id = $1 AND in_app_enabled FOR SHARE
),
broadcast AS (
    SELECT b.id, b.properties, b.priority, b.persistent, b.campaign,
           coalesce(b.expires_at, clock.now + make_interval(secs => b.ttl_s)) AS expires_at
    FROM broadcasts b, workspace, clock
    WHERE b.id = $2 AND b.workspace_id = workspace.id
),
inserted AS (
    INSERT INTO messages (id, workspace_id, person_id, broadcast_id, content, properties, priority, persistent,
                          campaign, expires_at, created_at)
    SELECT mailslot_entry_id_v1(), $1, r.person_id, broadcast.id, r.content, broadcast.properties, broadcast.priority,
           broadcast.persistent, broadcast.campaign, broadcast.expires_at, clock.now
    FROM unnest($3::bigint[], $4::jsonb[]) AS r(person_id, content), broadcast, clock
    RETURNING id
),
-- No `queued` event per entry: an entry's created_at is when it was queued, and the readers of
-- events show it as its `queued` event (decision 0022); per-entry events start with `offered`.
counted AS (
    SELECT count(*) AS queued FROM inserted
),
updated AS (
    UPDATE broadcasts SET queued = counted.queued FROM counted WHERE broadcasts.id = $2
),
notified AS (
    SELECT mailslot_notify_broadcast_v1($1) FROM counted
    WHERE counted.queued > 0
)
SELECT (SELECT count(*) FROM workspace) > 0 AS enabled,
       (SELECT queued FROM counted) AS queued,
       (SELECT count(*) FROM notified) AS notified;

-- resend_broadcast --
-- Re-entry: give every person who got an entry of a broadcast a new one with the content of their latest entry, in one set-based statement (no `queued` event per entry), unless the broadcast is recalled, the workspace disabled or a fixed expires_at passed; wake the workspace's devices once. $1 workspace_id, $2 broadcast id, $3 now
WITH clock AS (
    SELECT coalesce($3::timestamptz, now()) AS now
),
target AS (
    SELECT b.id, b.status, b.properties, b.priority, b.persistent, b.campaign, b.expires_at, b.ttl_s
    FROM broadcasts b
    WHERE b.workspace_id = $1 AND b.id = $2
    FOR UPDATE
),
workspace AS (
    SELECT id FROM workspaces WHERE id = $1 AND in_app_enabled FOR SHARE
),
broadcast AS (
    SELECT target.id, target.properties, target.priority, target.persistent, target.campaign,
           coalesce(target.expires_at, clock.now + make_interval(secs => target.ttl_s)) AS expires_at
    FROM target, workspace, clock
    WHERE target.status = 'queued' AND (target.expires_at IS NULL OR target.expires_at > clock.now)
),
latest AS (
    SELECT DISTINCT ON (m.person_id) m.person_id, m.content
    FROM messages m
    WHERE m.broadcast_id = $2 AND m.workspace_id = $1
    ORDER BY m.person_id, m.created_at DESC
),
inserted AS (
    INSERT INTO messages (id, workspace_id, person_id, broadcast_id, content, properties, priority, persistent,
                          campaign, expires_at, created_at)
    SELECT mailslot_entry_id_v1(), $1, latest.person_id, broadcast.id, latest.content, broadcast.properties, broadcast.priority,
           broadcast.persistent, broadcast.campaign, broadcast.expires_at, clock.now
    FROM broadcast, latest, clock
    RETURNING id
),
-- No `queued` event per entry: an entry's created_at is when it was queued, and the readers of
-- events show it as its `queued` event (decision 0022); per-entry events start with `offered`.
counted AS (
    SELECT count(*) AS queued FROM inserted
),
updated AS (
    UPDATE broadcasts SET queued = counted.queued, sends = broadcasts.sends + 1, last_sent_at = clock.now
    FROM counted, broadcast, clock
    WHERE broadcasts.id = broadcast.id
),
notified AS (
    SELECT mailslot_notify_broadcast_v1($1) FROM counted
    WHERE counted.queued > 0
)
SELECT (SELECT status FROM target) AS status,
       (SELECT count(*) FROM workspace) > 0 AS enabled,
       (SELECT count(*) FROM broadcast) > 0 AS resent,
       (SELECT queued FROM counted) AS queued,
       -- A SELECT in WITH runs only as far as the main query reads it: without this, no wake-up.
       (SELECT count(*) FROM notified) AS notified;

-- lock_broadcast --
-- Lock a broadcast row so that a recall sees every entry a concurrent resend committed. $1 workspace_id, $2 broadcast id
SELECT id FROM broadcasts WHERE workspace_id = $1 AND id = $2 FOR UPDATE;

-- recall_broadcast --
-- Recall every entry of a broadcast not yet shown (queued or offered, not past expires_at), record the recalled events, and mark the broadcast recalled. $1 workspace_id, $2 broadcast id, $3 now
WITH clock AS (
    SELECT coalesce($3::timestamptz, now()) AS now
),
updated AS (
    UPDATE broadcasts b SET status = 'recalled', recalled_at = coalesce(b.recalled_at, clock.now)
    FROM clock
    WHERE b.workspace_id = $1 AND b.id = $2
    RETURNING b.id
),
recalled AS (
    UPDATE messages m
    SET state = 'recalled', closed_at = clock.now, lease_expires_at = NULL
    FROM updated, clock
    WHERE m.broadcast_id = updated.id AND m.workspace_id = $1
      AND m.state IN ('queued', 'offered')
      AND m.expires_at > clock.now
    RETURNING m.id, m.workspace_id
),
recorded AS (
    INSERT INTO events (workspace_id, message_id, type, at)
    SELECT recalled.workspace_id, recalled.id, 'recalled', clock.now FROM recalled, clock
)
SELECT (SELECT count(*) FROM updated) > 0 AS found,
       (SELECT count(*) FROM recalled) AS recalled;

-- ===== personalization, stored templates, test sends and setup status =====

-- create_template --
-- Store a template (its Liquid already parsed by the gateway); a taken name is a unique violation. $1 workspace_id, $2 name, $3 content, $4 properties, $5 now
INSERT INTO templates (workspace_id, name, content, properties, created_at)
VALUES ($1, $2, $3, $4, coalesce($5::timestamptz, now()))
RETURNING id, name, content, properties, created_at;

-- get_template --
-- One template of a workspace. $1 workspace_id, $2 template id
SELECT id, name, content, properties, created_at
FROM templates
WHERE workspace_id = $1 AND id = $2;

-- list_templates --
-- A workspace's templates, newest first. $1 workspace_id
SELECT id, name, content, properties, created_at
FROM templates
WHERE workspace_id = $1
ORDER BY created_at DESC, name;

-- get_workspace_setup --
-- When and on which platform a device first showed a message of the workspace (NULLs: not yet). $1 workspace_id
SELECT first_shown_at, first_shown_platform
FROM workspaces
WHERE id = $1;

-- notify_queue --
-- Wake every process's polls for a person without a send (identify moved messages to them). $1 workspace_id, $2 person id
SELECT mailslot_notify_queued_v1($1, $2);

-- notify_barrier --
-- A commit-order barrier: a marker on one process's own channel; once its listener hears it, every notice committed before it was heard (docs/decisions/0021-answer-from-memory.md). $1 the process's barrier channel, $2 the round's token
SELECT mailslot_notify_barrier_v1($1, $2);

-- analyze_queue --
-- Refresh the planner's statistics of the queue after a bulk insert (a large broadcast, which adds no event rows since decision 0022).
ANALYZE messages;

-- ===== the console (decision 0020) =====

-- create_console_token --
-- Store a console session or one-time sign-in link by the hash of its token, and delete expired ones. $1 sha256 of the token, $2 workspace_id, $3 kind ('session' or 'link'), $4 csrf token, $5 now, $6 lifetime in seconds
WITH clock AS (
    SELECT coalesce($5::timestamptz, now()) AS now
),
swept AS (
    DELETE FROM console_sessions s USING clock WHERE s.expires_at <= clock.now
)
INSERT INTO console_sessions (token_hash, workspace_id, kind, csrf_token, created_at, expires_at)
SELECT $1, $2, $3, $4, clock.now, clock.now + make_interval(secs => $6::integer) FROM clock
RETURNING expires_at;

-- get_console_session --
-- A live session with its workspace (no row: unknown, expired, or a link). $1 sha256 of the token, $2 now
SELECT s.csrf_token, s.expires_at,
       w.id, w.name, w.site_id, w.identity_secret, w.identity_mode, w.in_app_enabled,
       w.active_s, w.inactive_s, w.low_s, w.recent_days, w.lease_s, w.identity_hash_allowed,
       w.max_token_lifetime_s, w.rate_limits, w.retention_days, w.device_attributes,
       mailslot_identity_secrets_v1(w.id) AS identity_secrets
FROM console_sessions s
JOIN workspaces w ON w.id = s.workspace_id
WHERE s.token_hash = $1 AND s.kind = 'session' AND s.expires_at > coalesce($2::timestamptz, now());

-- use_console_link --
-- Spend a one-time sign-in link: delete it and return its workspace (no row: unknown, used or expired). $1 sha256 of the token, $2 now
DELETE FROM console_sessions
WHERE token_hash = $1 AND kind = 'link' AND expires_at > coalesce($2::timestamptz, now())
RETURNING workspace_id;

-- delete_console_session --
-- Sign out: forget a session. $1 sha256 of the token
DELETE FROM console_sessions WHERE token_hash = $1 AND kind = 'session';

-- count_pending_messages --
-- How many messages of a workspace are queued or offered and not past expires_at (what disabling would recall). $1 workspace_id, $2 now
SELECT count(*) AS pending
FROM messages m
WHERE m.workspace_id = $1 AND m.state IN ('queued', 'offered')
  AND m.expires_at > coalesce($2::timestamptz, now());

-- count_broadcast_audience --
-- How many people a broadcast to this audience would reach now (ids and emails not yet known count as new people), as list_broadcast_audience selects them. $1 workspace_id, $2 external ids, $3 lower-cased emails, $4 everyone, $5 attribute filter as jsonpath or NULL, $6 the filter's variables
WITH names AS MATERIALIZED (
    SELECT device_attributes AS names FROM workspaces WHERE id = $1
)
SELECT CASE
    WHEN $4::boolean THEN (SELECT count(*) FROM people p WHERE p.workspace_id = $1)
    WHEN $5::jsonpath IS NOT NULL THEN (
        SELECT count(*) FROM people p, names
        WHERE p.workspace_id = $1
          AND jsonb_path_match(mailslot_readable_attributes_v1(p.attributes, p.device_attributes, names.names),
                               $5::jsonpath, $6::jsonb, true))
    ELSE (SELECT count(DISTINCT x) FROM unnest($2::text[]) x) + (SELECT count(DISTINCT x) FROM unnest($3::text[]) x)
END AS audience;

-- list_workspace_messages --
-- A page of a workspace's messages, newest first, optionally only those in one state (queued or offered past expires_at read as expired), older than a cursor. $1 workspace_id, $2 at most this many, $3 now, $4 state or NULL, $5 created_at of the cursor or NULL (first page), $6 id of the cursor
SELECT m.id, p.external_id, p.email,
       CASE WHEN m.state IN ('queued', 'offered') AND m.expires_at <= coalesce($3::timestamptz, now())
            THEN 'expired' ELSE m.state END AS state,
       coalesce(m.content, b.content) AS content, m.properties, m.priority, m.persistent, m.campaign,
       m.created_at, m.expires_at, m.device_id, m.lease_expires_at, m.shown_at
FROM messages m
JOIN people p ON p.id = m.person_id
LEFT JOIN broadcasts b ON b.id = m.broadcast_id
WHERE m.workspace_id = $1
  AND ($4::text IS NULL
       OR $4 = CASE WHEN m.state IN ('queued', 'offered') AND m.expires_at <= coalesce($3::timestamptz, now())
                    THEN 'expired' ELSE m.state END)
  AND ($5::timestamptz IS NULL OR (m.created_at, m.id) < ($5, $6::uuid))
ORDER BY m.created_at DESC, m.id DESC
LIMIT $2;

-- count_workspace_messages --
-- A workspace's messages by state (queued or offered past expires_at count as expired). $1 workspace_id, $2 now
SELECT CASE WHEN m.state IN ('queued', 'offered') AND m.expires_at <= coalesce($2::timestamptz, now())
            THEN 'expired' ELSE m.state END AS state,
       count(*) AS n
FROM messages m
WHERE m.workspace_id = $1
GROUP BY 1;

-- list_broadcast_ids --
-- A page of a workspace's broadcasts, newest first, older than a cursor. $1 workspace_id, $2 at most this many, $3 created_at of the cursor or NULL (first page), $4 id of the cursor
SELECT id FROM broadcasts
WHERE workspace_id = $1 AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))
ORDER BY created_at DESC, id DESC
LIMIT $2;

-- list_broadcast_titles --
-- What the console names broadcasts by: each one's content title (or else body), as sent. $1 workspace_id, $2 broadcast ids
SELECT id, coalesce(content ->> 'title', content ->> 'body', '') AS title
FROM broadcasts
WHERE workspace_id = $1 AND id = any($2::uuid[]);

-- list_campaigns --
-- A workspace's campaigns with their message count, first and latest send, most recent first. $1 workspace_id, $2 at most this many
SELECT campaign, count(*) AS messages, min(created_at) AS first_sent_at, max(created_at) AS last_sent_at
FROM messages
WHERE workspace_id = $1 AND campaign IS NOT NULL
GROUP BY campaign
ORDER BY max(created_at) DESC
LIMIT $2;

-- count_campaign_messages --
-- A campaign's messages by state (queued or offered past expires_at count as expired), those with an action, and its first send; what retention deleted is not counted. $1 workspace_id, $2 campaign, $3 now
WITH clock AS (
    SELECT coalesce($3::timestamptz, now()) AS now
)
SELECT count(*) AS total, min(m.created_at) AS first_sent_at,
       count(*) FILTER (WHERE m.state = 'queued' AND m.expires_at > clock.now) AS n_queued,
       count(*) FILTER (WHERE m.state = 'offered' AND m.expires_at > clock.now) AS n_offered,
       count(*) FILTER (WHERE m.state = 'shown') AS n_shown,
       count(*) FILTER (WHERE m.state IN ('shown', 'dismissed')
                          AND EXISTS (SELECT 1 FROM events e
                                      WHERE e.message_id = m.id AND e.type = 'action')) AS n_action,
       count(*) FILTER (WHERE m.state = 'dismissed') AS n_dismissed,
       count(*) FILTER (WHERE m.state = 'expired'
                          OR (m.state IN ('queued', 'offered') AND m.expires_at <= clock.now)) AS n_expired,
       count(*) FILTER (WHERE m.state = 'recalled') AS n_recalled
FROM messages m
CROSS JOIN clock
WHERE m.workspace_id = $1 AND m.campaign = $2;

-- count_funnel_events --
-- The events of a broadcast's or a campaign's messages, counted by type per time bucket (an action counts once per message; a broadcast entry's `queued` is its created_at), for the delivery funnel. $1 workspace_id, $2 broadcast id or NULL, $3 campaign or NULL, $4 bucket width in seconds
WITH chosen AS MATERIALIZED (
    SELECT m.id, m.broadcast_id, m.created_at
    FROM messages m
    WHERE m.workspace_id = $1
      AND (($2::uuid IS NOT NULL AND m.broadcast_id = $2) OR ($3::text IS NOT NULL AND m.campaign = $3))
),
happened AS (
    SELECT e.message_id, e.type, e.at
    FROM events e JOIN chosen c ON c.id = e.message_id
    WHERE e.type <> 'offered'
    UNION ALL
    -- A broadcast entry's `queued` event is its created_at (decision 0022).
    SELECT c.id, 'queued', c.created_at
    FROM chosen c
    WHERE c.broadcast_id IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM events e WHERE e.message_id = c.id AND e.type = 'queued')
)
SELECT to_timestamp(floor(extract(epoch FROM at) / $4::integer) * $4::integer) AS bucket, type,
       count(DISTINCT (message_id, type)) AS n
FROM happened
GROUP BY 1, 2
ORDER BY 1, 2;

-- record_device_polls --
-- The console's "last poll" of many devices at once: each process gathers its polls in memory and writes them in one batch every few seconds (gateway/core/device_polls.py), so no poll pays for it; a device whose person is unknown is skipped, and a time never moves back. $1 workspace ids, $2 users (id or email), $3 device ids, $4 poll times (NULL: now)
WITH polled AS (
    SELECT DISTINCT ON (p.id, r.device_id) r.workspace_id, p.id AS person_id, r.device_id,
           coalesce(r.polled_at, now()) AS polled_at
    FROM unnest($1::bigint[], $2::text[], $3::text[], $4::timestamptz[]) AS r (workspace_id, user_, device_id, polled_at)
    CROSS JOIN LATERAL (
        SELECT p.id FROM people p
        WHERE p.workspace_id = r.workspace_id AND (p.external_id = r.user_ OR p.email = lower(r.user_))
        ORDER BY (p.external_id = r.user_) IS TRUE DESC
        LIMIT 1
    ) p
    ORDER BY p.id, r.device_id, coalesce(r.polled_at, now()) DESC
)
INSERT INTO device_polls AS d (workspace_id, person_id, device_id, polled_at)
SELECT workspace_id, person_id, device_id, polled_at FROM polled
ORDER BY person_id, device_id
ON CONFLICT (person_id, device_id) DO UPDATE SET polled_at = excluded.polled_at
WHERE d.polled_at < excluded.polled_at;

-- list_person_devices --
-- The devices that polled as a person, most recent first, with when each last polled (gathered in memory and written every few seconds). $1 person id
SELECT device_id, polled_at FROM device_polls WHERE person_id = $1 ORDER BY polled_at DESC;

-- list_unsettled_people --
-- The census (decision 0028): people a poll must ask the database about: a message queued or offered, a persistent message shown, or a message within the workspace's recent window (inclusive, as the tier's rule). Each reason is read from its own index, so the read costs what it names, not the number of people (decision 0035). $1 now (NULL: the database's), $2 at most this many
WITH clock AS MATERIALIZED (
    SELECT coalesce($1::timestamptz, now()) AS now
),
windows AS MATERIALIZED (
    SELECT w.id, clock.now - make_interval(days => w.recent_days) AS since
    FROM workspaces w, clock
),
unsettled AS (
    -- A message queued or offered (past expires_at too, until it is recorded as expired).
    SELECT m.person_id FROM messages m WHERE m.state IN ('queued', 'offered')
    UNION
    SELECT m.person_id FROM messages m WHERE m.state = 'shown' AND m.persistent
    UNION
    -- A final message sent within the window. It became final no earlier than it was sent (a
    -- send's expires_at is after its created_at, closed_at is when it closed), so the window
    -- bounds least(closed_at, expires_at) too, and messages_final_by_workspace finds it.
    SELECT m.person_id
    FROM windows w
    CROSS JOIN LATERAL (
        SELECT m.person_id FROM messages m
        WHERE m.workspace_id = w.id AND m.state IN ('shown', 'dismissed', 'expired', 'recalled')
          AND least(m.closed_at, m.expires_at) >= w.since AND m.created_at >= w.since
    ) m
    UNION
    -- A message retention deleted, folded into last_message_at.
    SELECT p.id
    FROM windows w
    CROSS JOIN LATERAL (
        SELECT p.id FROM people p
        WHERE p.workspace_id = w.id AND p.last_message_at IS NOT NULL AND p.last_message_at >= w.since
    ) p
)
-- Each named person read by primary key: as a join, the planner hashed every person of every
-- workspace (a sequential scan, 139 of 311 ms at 1,000,000 people) to name the few listed here.
-- OFFSET 0 keeps the subquery from being flattened into that join.
SELECT p.workspace_id, p.external_id, p.email, p.anonymous_id
FROM unsettled u
CROSS JOIN LATERAL (
    SELECT p.workspace_id, p.external_id, p.email, p.anonymous_id FROM people p WHERE p.id = u.person_id
    OFFSET 0
) p
LIMIT $2;

-- list_visit_workspaces --
-- Workspaces with a visit broadcast still open, where time alone can make a message due (the census leaves them out). $1 now (NULL: the database's)
SELECT DISTINCT b.workspace_id
FROM broadcasts b
WHERE b.visit_ends_at IS NOT NULL AND b.status = 'queued' AND b.visit_ends_at > coalesce($1::timestamptz, now());

-- The poll's claim, version 2 (docs/decisions/0045-acknowledged-offers-in-memory.md): the body of
-- mailslot_claim_messages_v1 (migration 0027) with one more column, `pending_elsewhere`: whether,
-- as of the call's snapshot, the person has any message queued or offered apart from those this
-- call claimed, expired or hands the device as held. `pending` is true whenever the call itself
-- claimed something, so it cannot tell a poller that the offers it hands out are all there is.
-- A row that a concurrent claim had locked (skipped by SKIP LOCKED) counts as pending elsewhere.
-- $1 workspace_id, $2 user (id or email; NULL for a visitor), $3 device_id, $4 now (NULL: the
-- database's), $5 lease_s, $6 at most this many new claims, $7 anonymous visitor id (NULL for a user).
--
-- mailslot_claim_messages_v1 stays for gateways still running during a rolling deploy; a later
-- after-deploy migration may drop it once no release calls it.
-- The body uses $n, not the parameter names, because a column of the same name would win.
CREATE FUNCTION mailslot_claim_messages_v2(
    workspace_id bigint, user_key text, device_id text, at timestamptz, lease_s integer,
    claim_limit integer, anonymous_id text
)
RETURNS TABLE (
    now timestamptz, person_id bigint, last_message_at timestamptz, pending boolean, showing boolean,
    visiting boolean, pending_elsewhere boolean, id uuid, content jsonb, properties jsonb, priority integer,
    persistent boolean, expires_at timestamptz, campaign text, offered boolean, lease_expires_at timestamptz
)
LANGUAGE sql VOLATILE
AS $$
    WITH clock AS MATERIALIZED (
        SELECT coalesce($4::timestamptz, now()) AS now
    ),
    found AS MATERIALIZED (
        SELECT p.id, p.last_message_at
        FROM people p
        WHERE p.workspace_id = $1 AND (p.external_id = $2 OR p.email = lower($2) OR p.anonymous_id = $7::text)
        ORDER BY (p.external_id = $2) IS TRUE DESC
        LIMIT 1
    ),
    -- The workspace's visit broadcasts still open (none while in-app messaging is disabled).
    visits AS MATERIALIZED (
        SELECT b.id, b.visit_every_s
        FROM broadcasts b, clock
        WHERE b.workspace_id = $1 AND b.visit_ends_at IS NOT NULL AND b.status = 'queued'
          AND b.visit_ends_at > clock.now
          AND EXISTS (SELECT 1 FROM workspaces w WHERE w.id = $1 AND w.in_app_enabled)
    ),
    -- A visitor's row is created only when a visit broadcast is there for them; two tabs creating it
    -- at once: one wins, the other finds no one this time and enters on its next poll.
    new_visitor AS (
        INSERT INTO people (workspace_id, anonymous_id)
        SELECT $1, $7::text
        WHERE $7::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM found) AND EXISTS (SELECT 1 FROM visits)
        ON CONFLICT DO NOTHING
        RETURNING id, last_message_at
    ),
    person AS MATERIALIZED (
        SELECT id, last_message_at FROM found
        UNION ALL
        SELECT id, last_message_at FROM new_visitor
    ),
    -- The row lock on (broadcast, person) serializes devices of one person: a second poll waits for
    -- the first's entry, then finds it too recent (or, for `once`, finds it at all) and enters nothing.
    entered AS (
        INSERT INTO visit_entries AS v (broadcast_id, person_id, entered_at)
        SELECT visits.id, person.id, clock.now FROM visits, person, clock
        -- Due as this snapshot sees it, so that a person already in never takes the row lock.
        WHERE NOT EXISTS (SELECT 1 FROM visit_entries e
                          WHERE e.broadcast_id = visits.id AND e.person_id = person.id
                            AND (visits.visit_every_s IS NULL
                                 OR e.entered_at > clock.now - make_interval(secs => visits.visit_every_s)))
        ON CONFLICT (broadcast_id, person_id) DO UPDATE SET entered_at = excluded.entered_at
        WHERE v.entered_at <= excluded.entered_at - make_interval(
            secs => (SELECT b.visit_every_s FROM broadcasts b WHERE b.id = v.broadcast_id))
        RETURNING v.broadcast_id, v.person_id
    ),
    copied AS (
        INSERT INTO messages (workspace_id, person_id, broadcast_id, content, properties, priority, persistent,
                              campaign, expires_at, created_at, state, device_id, lease_expires_at)
        -- NULL content: the copy shows its broadcast's.
        SELECT $1, entered.person_id, b.id, NULL, b.properties, b.priority, b.persistent, b.campaign,
               b.visit_ends_at, clock.now, 'offered', $3, clock.now + make_interval(secs => $5::integer)
        FROM entered JOIN broadcasts b ON b.id = entered.broadcast_id, clock
        RETURNING id, workspace_id, content, broadcast_id, properties, priority, persistent,
                  expires_at, campaign, created_at, lease_expires_at, true AS offered
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
        RETURNING m.id, m.workspace_id, m.content, m.broadcast_id, m.properties, m.priority, m.persistent,
                  m.expires_at, m.campaign, m.created_at, m.lease_expires_at, true AS offered
    ),
    recorded AS (
        INSERT INTO events (workspace_id, message_id, type, device_id, at)
        SELECT claimed.workspace_id, claimed.id, 'offered', $3, clock.now FROM claimed, clock
        UNION ALL
        SELECT expired.workspace_id, expired.id, 'expired', NULL, clock.now FROM expired, clock
        UNION ALL
        SELECT copied.workspace_id, copied.id, e.type, e.device_id, clock.now
        FROM copied, clock, (VALUES ('queued', NULL), ('offered', $3)) AS e (type, device_id)
    ),
    held AS (
        SELECT m.id, m.workspace_id, m.content, m.broadcast_id, m.properties, m.priority, m.persistent,
               m.expires_at, m.campaign, m.created_at, m.lease_expires_at, m.state = 'offered' AS offered
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
        SELECT * FROM copied
        UNION ALL
        SELECT * FROM held
    ),
    facts AS (
        SELECT clock.now, person.id AS person_id,
               -- The retention sweep folds the latest deleted message into people.last_message_at.
               greatest((SELECT max(m.created_at) FROM messages m WHERE m.person_id = person.id),
                        person.last_message_at) AS last_message_at,
               EXISTS (SELECT 1 FROM messages m
                       WHERE m.person_id = person.id AND m.state IN ('queued', 'offered')) AS pending,
               EXISTS (SELECT 1 FROM messages m
                       WHERE m.person_id = person.id AND m.state = 'shown' AND m.persistent) AS showing,
               -- A visit broadcast this person may still enter: time alone can make it due, with no NOTIFY.
               EXISTS (SELECT 1 FROM visits
                       WHERE visits.visit_every_s IS NOT NULL
                          OR NOT EXISTS (SELECT 1 FROM visit_entries v
                                         WHERE v.broadcast_id = visits.id AND v.person_id = person.id)) AS visiting,
               -- Pending apart from what this call hands the device (decision 0045): what it claimed,
               -- expired or holds for the device is left out; a row a concurrent claim had locked
               -- (skipped) counts, and so does one over the claim limit.
               EXISTS (SELECT 1 FROM messages m
                       WHERE m.person_id = person.id AND m.state IN ('queued', 'offered')
                         AND NOT EXISTS (SELECT 1 FROM claimed WHERE claimed.id = m.id)
                         AND NOT EXISTS (SELECT 1 FROM expired WHERE expired.id = m.id)
                         AND NOT EXISTS (SELECT 1 FROM held WHERE held.id = m.id)) AS pending_elsewhere
        FROM clock LEFT JOIN person ON true
    )
    SELECT facts.now, facts.person_id, facts.last_message_at, facts.pending, facts.showing, facts.visiting,
           facts.pending_elsewhere,
           d.id, coalesce(d.content, b.content) AS content, d.properties, d.priority, d.persistent,
           d.expires_at, d.campaign, d.offered, d.lease_expires_at
    FROM facts
    LEFT JOIN delivered d ON true
    LEFT JOIN broadcasts b ON b.id = d.broadcast_id
    ORDER BY d.priority, d.created_at
$$;

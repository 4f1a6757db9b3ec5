-- The poll's claim as a function (docs/decisions/0037-one-claim-for-many-polls.md), so that one
-- statement can claim for many polls: `claim_message_batch` in storage/queries.sql calls it once
-- per poll, in one transaction (one commit). A VOLATILE function takes a fresh snapshot for each
-- call and sees what the earlier calls of the same statement wrote, so two devices of one person
-- claimed in one statement behave as two claims one after the other: the first wins.
--
-- The body is the claim statement of decision 0001, unchanged: claim a person's deliverable
-- messages for one device under a lease, enter the person into the workspace's due visit
-- broadcasts (creating an anonymous visitor on their first due visit) with a copy offered to this
-- device, record the offers and expiries, and return what the device holds (with each offer's
-- lease end) with the tier's facts (and whether anything was pending or on display, or a visit
-- broadcast could still come, as of the call's snapshot).
-- $1 workspace_id, $2 user (id or email; NULL for a visitor), $3 device_id, $4 now (NULL: the
-- database's), $5 lease_s, $6 at most this many new claims, $7 anonymous visitor id (NULL for a user).
--
-- Versioned like the mailslot_notify_*_v1 functions (migration 0006): a change to the claim adds
-- `_v2` in a new file and leaves this one for gateways still running during a rolling deploy.
-- The body uses $n, not the parameter names, because a column of the same name would win.
CREATE FUNCTION mailslot_claim_messages_v1(
    workspace_id bigint, user_key text, device_id text, at timestamptz, lease_s integer,
    claim_limit integer, anonymous_id text
)
RETURNS TABLE (
    now timestamptz, person_id bigint, last_message_at timestamptz, pending boolean, showing boolean,
    visiting boolean, id uuid, content jsonb, properties jsonb, priority integer, persistent boolean,
    expires_at timestamptz, campaign text, offered boolean, lease_expires_at timestamptz
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
                                         WHERE v.broadcast_id = visits.id AND v.person_id = person.id)) AS visiting
        FROM clock LEFT JOIN person ON true
    )
    SELECT facts.now, facts.person_id, facts.last_message_at, facts.pending, facts.showing, facts.visiting,
           d.id, coalesce(d.content, b.content) AS content, d.properties, d.priority, d.persistent,
           d.expires_at, d.campaign, d.offered, d.lease_expires_at
    FROM facts
    LEFT JOIN delivered d ON true
    LEFT JOIN broadcasts b ON b.id = d.broadcast_id
    ORDER BY d.priority, d.created_at
$$;

-- Anonymous visitors (decision 0023): a device that polls before `identify` is a person known
-- only by the visitor id its SDK keeps, and a broadcast "to everyone who visits" is a standing
-- rule each visiting person enters when they poll, at most once or once every `visit_every_s`.

-- A visitor is a person with only an `anonymous_id`: never an id or an email as well, so a
-- poll that names a visitor can never reach a known person's queue.
ALTER TABLE people ADD COLUMN anonymous_id text;
ALTER TABLE people DROP CONSTRAINT people_known;
ALTER TABLE people ADD CONSTRAINT people_known
    CHECK (external_id IS NOT NULL OR email IS NOT NULL OR anonymous_id IS NOT NULL);
ALTER TABLE people ADD CONSTRAINT people_visitor_only_anonymous
    CHECK (anonymous_id IS NULL OR (external_id IS NULL AND email IS NULL));
ALTER TABLE people ADD CONSTRAINT people_anonymous_id_key UNIQUE (workspace_id, anonymous_id);

-- A visit broadcast has an end (`visit_ends_at`, NULL: an ordinary broadcast) and a frequency
-- (`visit_every_s`, NULL: once per person).
ALTER TABLE broadcasts ADD COLUMN visit_ends_at timestamptz;
ALTER TABLE broadcasts ADD COLUMN visit_every_s integer CHECK (visit_every_s > 0);
-- The claim reads a workspace's visit broadcasts on every poll.
CREATE INDEX broadcasts_visits_by_workspace ON broadcasts (workspace_id, visit_ends_at)
    WHERE visit_ends_at IS NOT NULL AND status = 'queued';

-- When each person last entered each visit broadcast: the row is the lock that lets two devices
-- of one person polling at once create one copy, not two.
CREATE TABLE visit_entries (
    broadcast_id uuid        NOT NULL,
    person_id    bigint      NOT NULL,
    entered_at   timestamptz NOT NULL,
    PRIMARY KEY (broadcast_id, person_id)
);
CREATE INDEX visit_entries_by_person ON visit_entries (person_id);

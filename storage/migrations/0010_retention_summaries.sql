-- What outlives deleted messages: the tier's fact (a person's latest message) and each
-- broadcast's counts of the entries it no longer holds. The sweep folds them in as it deletes.

ALTER TABLE people ADD COLUMN last_message_at timestamptz;

ALTER TABLE broadcasts
    ADD COLUMN retired_total     integer NOT NULL DEFAULT 0,
    ADD COLUMN retired_shown     integer NOT NULL DEFAULT 0,
    ADD COLUMN retired_action    integer NOT NULL DEFAULT 0,
    ADD COLUMN retired_dismissed integer NOT NULL DEFAULT 0,
    ADD COLUMN retired_expired   integer NOT NULL DEFAULT 0,
    ADD COLUMN retired_recalled  integer NOT NULL DEFAULT 0;

-- Broadcasts can be re-sent and recalled: how many times one was sent, when last, and when recalled.

ALTER TABLE broadcasts ADD COLUMN sends integer NOT NULL DEFAULT 1;
ALTER TABLE broadcasts ADD COLUMN last_sent_at timestamptz;
ALTER TABLE broadcasts ADD COLUMN recalled_at timestamptz;

-- The console (decision 0020): signed-in sessions and one-time sign-in links, and when each device
-- last polled (for the person page's "why didn't Ada see it?").

-- A session or a one-time link: only the SHA-256 of its token is stored, as for API keys.
-- `csrf_token` is the session's form token (no secret: it only has to match the page's).
CREATE TABLE console_sessions (
    token_hash   bytea       PRIMARY KEY,
    workspace_id bigint      NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    kind         text        NOT NULL CHECK (kind IN ('session', 'link')),
    csrf_token   text        NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL
);
CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_at);

-- A device's last poll, written by the claim statement at most once a minute per device, so a
-- poll stays one round trip and a device that polls every 10 s costs one row update a minute.
CREATE TABLE device_polls (
    workspace_id bigint      NOT NULL,
    person_id    bigint      NOT NULL,
    device_id    text        NOT NULL,
    polled_at    timestamptz NOT NULL,
    PRIMARY KEY (person_id, device_id)
);

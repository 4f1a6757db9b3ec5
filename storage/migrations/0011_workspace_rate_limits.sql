-- A workspace's own rate limits, overriding the server's defaults (gateway/core/ratelimits.py):
-- {"site" | "person" | "events" | "api_key": {"rate_per_s": number, "burst": number}}; a limit
-- not named here follows the server's setting.
ALTER TABLE workspaces ADD COLUMN rate_limits jsonb NOT NULL DEFAULT '{}';

-- Safe by default, signed user tokens, and rotation of API keys and identity secrets.
--
-- New workspaces demand identity proof: under first-device-wins a device polling as someone else
-- takes their messages away. Existing workspaces keep the mode they have.
ALTER TABLE workspaces ALTER COLUMN identity_mode SET DEFAULT 'required';

-- `identity_hash_allowed = false` leaves signed user tokens as the only proof; a token's exp may
-- lie at most `max_token_lifetime_s` after now (and after its iat).
ALTER TABLE workspaces
    ADD COLUMN identity_hash_allowed boolean NOT NULL DEFAULT true,
    ADD COLUMN max_token_lifetime_s  integer NOT NULL DEFAULT 86400 CHECK (max_token_lifetime_s > 0);

-- A rotated-out key keeps working until expires_at (its grace period); NULL: no end.
ALTER TABLE api_keys ADD COLUMN expires_at timestamptz;

-- Every identity secret a workspace accepts, named by `kid` (a token's header names its signer).
-- workspaces.identity_secret stays the newest one, which the static `user_hash` uses.
CREATE TABLE identity_secrets (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id bigint      NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    kid          text        NOT NULL,
    secret       text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    CONSTRAINT identity_secrets_kid_key UNIQUE (workspace_id, kid)
);

INSERT INTO identity_secrets (workspace_id, kid, secret, created_at)
SELECT id, 'kid_' || substr(replace(gen_random_uuid()::text, '-', ''), 1, 12), identity_secret, created_at
FROM workspaces;

-- A workspace's identity secrets as one JSON array, newest first, for the statements that read a
-- workspace (storage/workspaces.py parses it).
CREATE FUNCTION mailslot_identity_secrets_v1(workspace_id bigint) RETURNS jsonb
LANGUAGE sql STABLE
AS $$
    SELECT coalesce(
        jsonb_agg(jsonb_build_object('kid', s.kid, 'secret', s.secret, 'created_at', s.created_at,
                                     'expires_at', s.expires_at) ORDER BY s.id DESC),
        '[]'::jsonb)
    FROM identity_secrets s
    WHERE s.workspace_id = $1
$$;

-- Refresh tokens are stored only as SHA-256 digests: a leaked table cannot be replayed.
CREATE TABLE refresh_tokens (
    token_hash text PRIMARY KEY,
    family_id uuid NOT NULL,
    user_id uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at timestamptz NOT NULL,
    -- Set when rotated; presenting a used token again means it was stolen.
    used_at timestamptz,
    revoked_at timestamptz
);

CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);

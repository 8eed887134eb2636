-- The credentials version (usersvc's users.credentials_version) a session was opened with.
-- Sessions from before this migration count as version 0: older than any password.
ALTER TABLE refresh_tokens ADD COLUMN credentials_version bigint NOT NULL DEFAULT 0;

-- RevokeUserSessions ends a user's live tokens.
CREATE INDEX refresh_tokens_live_user_idx ON refresh_tokens (user_id) WHERE revoked_at IS NULL;

-- What usersvc asked for in RevokeUserSessions: sessions opened with a lower credentials
-- version (or any, once the user is deleted) are refused, also when they are opened or
-- refreshed after the request by a login that checked the old password just before it.
CREATE TABLE session_floors (
    user_id uuid PRIMARY KEY,
    min_credentials_version bigint NOT NULL,
    user_deleted boolean NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

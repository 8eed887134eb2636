-- Grows by one at every password change. Login hands it to authsvc with the session it
-- opens; authsvc refuses sessions opened with an older one (see session_revocations).
ALTER TABLE users ADD COLUMN credentials_version bigint NOT NULL DEFAULT 1;

-- An outbox: "tell authsvc to end this user's sessions", written in the same transaction as
-- the password change or deletion, so the request survives authsvc being down or this
-- process dying before it was delivered. Delivered at once and retried until authsvc
-- confirms (services/usersvc/sessions.py); one row per user holding the latest request.
-- No foreign key: the row must outlive a deleted user.
CREATE TABLE session_revocations (
    user_id uuid PRIMARY KEY,
    min_credentials_version bigint NOT NULL,
    user_deleted boolean NOT NULL DEFAULT false,
    requested_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

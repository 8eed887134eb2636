CREATE TABLE users (
    id uuid PRIMARY KEY,
    email text NOT NULL,
    display_name text NOT NULL DEFAULT '',
    password_hash text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Uniqueness is enforced here, not by a read-then-insert, so concurrent sign-ups with the
-- same address cannot both succeed.
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));

-- Keyset pagination for ListUsers.
CREATE INDEX users_created_at_id_idx ON users (created_at, id);

-- Failed logins, one row each, kept in auth_db so that every replica throttles the same
-- attempts. Rows older than the throttle window are pruned as new failures arrive.
CREATE TABLE login_failures (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- 'email:<lower-cased email>' or 'ip:<peer address>'.
    scope text NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX login_failures_scope_idx ON login_failures (scope, failed_at);
CREATE INDEX login_failures_failed_at_idx ON login_failures (failed_at);

CREATE TABLE payments (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL,
    amount bigint NOT NULL CHECK (amount > 0),
    currency char(3) NOT NULL,
    status text NOT NULL,
    description text NOT NULL DEFAULT '',
    idempotency_key text,
    -- SHA-256 of the request fields, so a reused key with a different request is caught.
    request_hash text,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Makes concurrent retries with one key collapse into a single row.
CREATE UNIQUE INDEX payments_user_idempotency_key
    ON payments (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

-- ListPayments: one user's payments, newest first.
CREATE INDEX payments_user_created_idx ON payments (user_id, created_at DESC, id DESC);

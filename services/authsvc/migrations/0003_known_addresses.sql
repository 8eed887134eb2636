-- Addresses each account has logged in from successfully (throttle.py): the account-wide
-- and address-wide failure ceilings do not apply there, so other people's failures never
-- lock an owner out of an address they use. Rows older than the policy's memory are pruned
-- as logins succeed.
CREATE TABLE login_known_addresses (
    -- The canonical email (libs/platform/emails.py).
    account text NOT NULL,
    -- libs/platform/admission.client_address(): an IP, or an IPv6 /64.
    address text NOT NULL,
    last_success_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (account, address)
);

CREATE INDEX login_known_addresses_last_success_idx ON login_known_addresses (last_success_at);

-- Scopes are now 'pair:<address> <account>', 'account:<account>' and 'ip:<address>'; rows in
-- the old 'email:' form no longer count and age out with the pruning.

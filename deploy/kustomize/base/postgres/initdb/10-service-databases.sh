#!/bin/sh
# Run once by the postgres image's entrypoint, on the first start of an empty data volume
# (later changes here need a fresh volume or a migration). Creates one database per
# service, owned by a login role that has no other privilege.
set -eu

# Passwords travel as psql variables and are quoted by psql (:'var'), so no value can
# break out of its literal, and none is written into this ConfigMap. The variables are
# collected in "$@" (POSIX sh has no arrays), one per service.
set --
# BEGIN passwords (generated: tools/bazel run //tools/inventory:sync)
: "${USERSVC_DB_PASSWORD:?must come from the usersvc-db Secret}"
set -- "$@" -v usersvc_pw="$USERSVC_DB_PASSWORD"
: "${PAYMENTSVC_DB_PASSWORD:?must come from the paymentsvc-db Secret}"
set -- "$@" -v paymentsvc_pw="$PAYMENTSVC_DB_PASSWORD"
: "${AUTHSVC_DB_PASSWORD:?must come from the authsvc-db Secret}"
set -- "$@" -v authsvc_pw="$AUTHSVC_DB_PASSWORD"
# END passwords

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres "$@" <<'SQL'
-- BEGIN roles (generated: tools/bazel run //tools/inventory:sync)
CREATE ROLE usersvc LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'usersvc_pw';
CREATE ROLE paymentsvc LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'paymentsvc_pw';
CREATE ROLE authsvc LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'authsvc_pw';
-- END roles

-- Ownership lets each service run its own migrations (PostgreSQL 15+ gives the public
-- schema to the database owner) without any cluster-wide privilege.
-- BEGIN databases (generated: tools/bazel run //tools/inventory:sync)
CREATE DATABASE users_db OWNER usersvc;
CREATE DATABASE payments_db OWNER paymentsvc;
CREATE DATABASE auth_db OWNER authsvc;
-- END databases

-- New databases let every role connect by default; take that away so a leaked
-- credential reaches one service's data only. Owners keep CONNECT through their own grant.
-- BEGIN connect (generated: tools/bazel run //tools/inventory:sync)
REVOKE CONNECT, TEMPORARY ON DATABASE users_db FROM PUBLIC;
REVOKE CONNECT, TEMPORARY ON DATABASE payments_db FROM PUBLIC;
REVOKE CONNECT, TEMPORARY ON DATABASE auth_db FROM PUBLIC;
-- END connect
REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC;
REVOKE CONNECT, TEMPORARY ON DATABASE template1 FROM PUBLIC;
SQL

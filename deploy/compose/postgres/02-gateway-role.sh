#!/bin/sh
# A login role for the gateway that can read AspNetUsers and nothing else; its password is the
# gateway_db_password secret (make-secrets.sh writes the same password into users_db_url).
set -eu
password=$(cat /run/secrets/gateway_db_password)
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -v pw="$password" <<'SQL'
CREATE ROLE gateway_ro LOGIN PASSWORD :'pw';
GRANT CONNECT ON DATABASE gateway TO gateway_ro;
GRANT USAGE ON SCHEMA public TO gateway_ro;
GRANT SELECT ON "AspNetUsers" TO gateway_ro;
ALTER ROLE gateway_ro SET default_transaction_read_only = on;
SQL

#!/bin/sh
# Writes ./secrets/ for compose.yaml: random JWT key, database and Redis passwords and admin token, the URLs
# that carry those passwords, and your Turnstile secret (the first argument). Existing files are kept, so
# running it again never rotates a secret behind a running stack's back.
#   ./make-secrets.sh 0x4AAAAAAA...your-widget-secret
set -eu
cd "$(dirname "$0")"
if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 <turnstile-secret>   (your widget's secret key from the Cloudflare dashboard)" >&2
    exit 2
fi
umask 077
mkdir -p secrets
random() { head -c "$1" /dev/urandom | base64 | tr -d '\n/+='; }
put() {
    # $1 file, $2 value; never overwrite.
    [ -e "secrets/$1" ] || printf '%s\n' "$2" > "secrets/$1"
}
put jwt_secret "$(random 48)"
put turnstile_secret "$1"
put admin_token "$(random 32)"
put postgres_password "$(random 24)"
put gateway_db_password "$(random 24)"
put redis_password "$(random 24)"
put users_db_url "postgres://gateway_ro:$(head -n1 secrets/gateway_db_password)@postgres:5432/gateway"
put redis_url "redis://:$(head -n1 secrets/redis_password)@redis:6379/0"
# Compose bind-mounts file secrets with their host permissions; the containers run as other users
# (gateway 10001, postgres 70, redis 999), so the files must be readable by them. Keep ./secrets itself
# private to you (mode 700).
chmod 700 secrets
chmod 644 secrets/*
echo "secrets written to $(pwd)/secrets"

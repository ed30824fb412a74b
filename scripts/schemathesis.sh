#!/usr/bin/env bash
# Fuzz the operator API (/api/v1) with schemathesis against its own OpenAPI document:
# builds the server (debug), starts it on a free port over a temporary SQLite store with an
# ADMIN operator, a domain and an account, and fails on any 5xx, any undocumented status,
# content type or header, and any response that does not match its schema.
#
#   scripts/schemathesis.sh                      # 20 examples per operation
#   SCHEMATHESIS_MAX_EXAMPLES=100 scripts/schemathesis.sh
#
# schemathesis is installed into target/schemathesis-venv (PyPI) on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

max_examples=${SCHEMATHESIS_MAX_EXAMPLES:-20}
version=${SCHEMATHESIS_VERSION:-4.32.5}
target_dir=${CARGO_TARGET_DIR:-$root/target}
venv=$target_dir/schemathesis-venv
st=$venv/bin/schemathesis

cargo build --quiet
bin=$target_dir/debug/sipsettings

if ! "$st" --version 2>/dev/null | grep -q "$version"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
fi

work=$(mktemp -d)
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# Only this script's settings: a fresh SQLite store, no configuration file.
unset SIPSETTINGS_CONFIG SIPSETTINGS_DATABASE_URL
export SIPSETTINGS_DATA_DIR=$work/data
export SIPSETTINGS_LISTEN=127.0.0.1:$port
# The fuzzer sends bad credentials on purpose (and may change the admin's password):
# no slow-down or ban for them, or everything after would be a 429.
export SIPSETTINGS_THROTTLE__SLOW_AFTER=1000000
export SIPSETTINGS_THROTTLE__MAX_FAILURES=1000000
export RUST_LOG=${RUST_LOG:-warn}

# A prefix, so the value never starts with '-' (clap would read it as an option).
password="st-$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')"
"$bin" operator add admin --role ADMIN --password="$password" >/dev/null
"$bin" domain add example.com >/dev/null
"$bin" reseller add R1 >/dev/null
"$bin" account add alice@example.com --password 'alice-secret' --first Alice >/dev/null

"$bin" serve >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  "$bin" healthcheck >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log"; exit 1; }
  sleep 0.1
done
"$bin" healthcheck >/dev/null

schema=http://127.0.0.1:$port/api/v1/openapi.json
checks=${SCHEMATHESIS_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,unsupported_method,allow_header_conformance}

run() {
  # From the temporary directory: schemathesis keeps a cache in the working directory.
  (cd "$work" && "$st" --config-file "$root/scripts/schemathesis.toml" run "$schema" \
    --auth "admin:$password" \
    --checks "$checks" \
    --max-examples "$max_examples" \
    --seed "${SCHEMATHESIS_SEED:-1}" \
    --generation-database none \
    --request-timeout 30 \
    --no-color \
    "$@")
}

status=0
# First everything but what removes the data the other operations work on (the ids of
# scripts/schemathesis.toml) or locks the fuzzer out; then the deletions; then, last, the
# change of the fuzzer's own password.
deletions='revoke_token|delete_account|delete_customer|delete_reseller|delete_operator|delete_domain'
lockout='set_operator_password'
run --exclude-operation-id-regex "^($deletions|$lockout)\$" || status=$?
run --include-operation-id-regex "^($deletions)\$" || status=$?
run --include-operation-id-regex "^($lockout)\$" || status=$?

if grep -qi "panicked" "$work/server.log"; then
  echo "the server panicked:" >&2
  grep -i -A5 "panicked" "$work/server.log" >&2
  status=1
fi
exit "$status"

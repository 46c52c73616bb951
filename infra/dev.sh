#!/usr/bin/env bash
# `make dev`: emulator up (installed if missing), table/TTL/bus bootstrapped, a demo entity
# with a fresh test key and live key, then the API on http://127.0.0.1:${PORT:-3000}.
# Ctrl-C stops everything this script started.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
cargo build -q --bin connectors-admin --bin connectors-dev
started=$(bash infra/emulator.sh start)
DEV_PID=
cleanup() {
  [ -n "$DEV_PID" ] && kill "$DEV_PID" 2>/dev/null
  [ "$started" = started ] && bash infra/emulator.sh stop
}
trap cleanup EXIT
trap 'exit 130' INT TERM
admin() { "$ROOT/target/debug/connectors-admin" "$@"; }
admin bootstrap
[ -s "$STATE/demo-entity" ] || python3 -c 'import uuid; print(uuid.uuid4())' >"$STATE/demo-entity"
ENTITY=$(cat "$STATE/demo-entity")
ALL=(--scope integrations:read --scope integrations:write --scope integrations:credentials --scope integrations:purge)
TEST_KEY=$(admin keys create --entity "$ENTITY" "${ALL[@]}" | tail -n 1)
LIVE_KEY=$(admin keys create --entity "$ENTITY" "${ALL[@]}" --live | tail -n 1)
cat <<MSG

  emulator     $AWS_ENDPOINT_URL ($started)
  demo entity  $ENTITY
  test key     $TEST_KEY
  live key     $LIVE_KEY
  API          http://127.0.0.1:${PORT:-3000}/v1/integrations

  export KEY=$TEST_KEY
  curl -s http://127.0.0.1:${PORT:-3000}/v1/integrations -H "Authorization: Bearer \$KEY"

MSG
"$ROOT/target/debug/connectors-dev" &
DEV_PID=$!
wait "$DEV_PID"

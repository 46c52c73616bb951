#!/usr/bin/env bash
# `make dev`: emulator up (installed if missing), table/TTL/bus bootstrapped, a demo entity
# with a fresh test key and live key, then the API on http://127.0.0.1:${PORT:-3000}.
# Ctrl-C stops everything this script started.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
cargo build -q --bin connectors-admin --bin connectors-dev
cargo_target_dir
started=$(bash infra/emulator.sh start)
DEV_PID=
cleanup() {
  if [ -n "$DEV_PID" ]; then kill "$DEV_PID" 2>/dev/null || true; fi
  if [ "$started" = started ]; then bash infra/emulator.sh stop || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
source "$ROOT/infra/demo.sh"
demo_banner "http://127.0.0.1:${PORT:-3000}" "$started"
"$TARGET_DIR/debug/connectors-dev" &
DEV_PID=$!
wait "$DEV_PID"

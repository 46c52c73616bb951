#!/usr/bin/env bash
# `make target-dir-smoke` (run by CI after `make simulate`): the scripts find what cargo
# built where cargo built it. The sources (tracked and untracked-but-not-ignored files of
# this checkout, with their modification times) are copied into a temporary directory,
# which has no ./target; there `make dev` and `make simulate` run with CARGO_TARGET_DIR set
# to this checkout's own target directory (whatever `cargo metadata` names). A script
# that ran `target/…` by path would find nothing there. Cargo's fingerprints do not
# depend on where the workspace lies, so the copy reuses the builds as they are: nothing
# recompiles unless the sources changed since the last build (then only the workspace's
# crates), and nothing is built for the sim profile if `make simulate` ran before.
#
#   make dev:      started on a free port with an emulator of its own on another free
#                  port (a running `make dev` is not disturbed) until it has printed its
#                  test key and answers GET /v1/integrations with 401 without a key and
#                  200 with it; then stopped, and its server and emulator must be gone.
#   make simulate: SIM_OPERATIONS=4000 (two seeds), which must end with 0 violations.
#
# Last line: `target-dir-smoke: ok in <S> s`; exit 1 on any failure.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
began=$(date +%s)
cargo_target_dir
export CARGO_TARGET_DIR="$TARGET_DIR"
bash infra/venv.sh  # the emulator, shared with the copy (not reinstalled there)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/target-dir-smoke.XXXXXX")
SRC="$WORK/src"
DEV_PGID=
cleanup() {
  local rc=$?
  if [ -n "$DEV_PGID" ]; then kill -TERM -- "-$DEV_PGID" 2>/dev/null || true; fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() { echo "target-dir-smoke: $*" >&2; exit 1; }

mkdir -p "$SRC"
git ls-files -z --cached --others --exclude-standard |
  while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
  tar --null -T - -cf - | tar -xf - -C "$SRC"
ln -sfn "$VENV" "$SRC/.venv"
[ ! -e "$SRC/target" ] || fail "the copy has a ./target"
echo "  CARGO_TARGET_DIR  $CARGO_TARGET_DIR"
echo "  sources           $SRC (no ./target)"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
EMULATOR_PORT=$(free_port)
DEV_PORT=$(free_port)
[ "$EMULATOR_PORT" != "$DEV_PORT" ] || DEV_PORT=$(free_port)
answers() { python3 - "$1" <<'PY'
import socket, sys
s = socket.socket(); s.settimeout(0.5)
sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)
PY
}

# ---- make dev ------------------------------------------------------------------------
log="$WORK/dev.log"
set -m  # its own process group: stopped as Ctrl-C would stop it, with all it started
(cd "$SRC" && AWS_ENDPOINT_URL="http://127.0.0.1:$EMULATOR_PORT" PORT="$DEV_PORT" exec make --no-print-directory dev) >"$log" 2>&1 &
DEV_PGID=$!
set +m
api="http://127.0.0.1:$DEV_PORT/v1/integrations"
key= anonymous= with_key=
deadline=$(($(date +%s) + 300))  # cargo may first rebuild the workspace crates
while [ "$(date +%s)" -lt "$deadline" ]; do
  kill -0 "$DEV_PGID" 2>/dev/null || { cat "$log" >&2; fail "make dev exited"; }
  key=$(awk '$1 == "test" && $2 == "key" {print $3}' "$log")
  if [ -n "$key" ]; then
    anonymous=$(curl -s -o /dev/null -w '%{http_code}' "$api" 2>/dev/null || true)
    if [ "$anonymous" = 401 ]; then
      with_key=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $key" "$api")
      break
    fi
  fi
  sleep 0.2
done
[ "$anonymous" = 401 ] || { cat "$log" >&2; fail "make dev did not serve $api within 300 s"; }
[ "$with_key" = 200 ] || { cat "$log" >&2; fail "GET $api with the printed test key: $with_key, not 200"; }
echo "  make dev          test key ${key:0:16}… after $(($(date +%s) - began)) s; GET /v1/integrations: $anonymous without a key, $with_key with it"
kill -INT -- "-$DEV_PGID" 2>/dev/null || true
wait "$DEV_PGID" 2>/dev/null || true
DEV_PGID=
for _ in $(seq 1 100); do
  answers "$DEV_PORT" || answers "$EMULATOR_PORT" || break
  sleep 0.1
done
! answers "$DEV_PORT" || fail "the dev server still answers on $DEV_PORT after make dev stopped"
! answers "$EMULATOR_PORT" || fail "the emulator still answers on $EMULATOR_PORT after make dev stopped"
echo "  make dev          stopped: nothing answers on $DEV_PORT (API) or $EMULATOR_PORT (emulator)"

# ---- make simulate -------------------------------------------------------------------
(cd "$SRC" && SIM_OPERATIONS=4000 exec make --no-print-directory simulate) >"$WORK/simulate.log" 2>&1 ||
  { cat "$WORK/simulate.log" >&2; fail "make simulate failed"; }
summary=$(grep -E '^simulate: [0-9]+ operations, [0-9]+ seeds, 0 violations$' "$WORK/simulate.log") ||
  { cat "$WORK/simulate.log" >&2; fail "make simulate printed no summary with 0 violations"; }
echo "  make simulate     $summary"

[ ! -e "$SRC/target" ] || fail "something built into the copy's ./target"
echo "target-dir-smoke: ok in $(($(date +%s) - began)) s"

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

source "$ROOT/infra/dev-background.sh"
dev_scratch target-dir-smoke
SRC="$WORK/src"
fail() { echo "target-dir-smoke: $*" >&2; exit 1; }

mkdir -p "$SRC"
git ls-files -z --cached --others --exclude-standard |
  while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
  tar --null -T - -cf - | tar -xf - -C "$SRC"
ln -sfn "$VENV" "$SRC/.venv"
[ ! -e "$SRC/target" ] || fail "the copy has a ./target"
echo "  CARGO_TARGET_DIR  $CARGO_TARGET_DIR"
echo "  sources           $SRC (no ./target)"

# ---- make dev ------------------------------------------------------------------------
dev_start "$SRC" "$WORK/dev.log" || fail "make dev did not start"
with_key=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $DEV_KEY" "$DEV_API")
[ "$with_key" = 200 ] || { cat "$WORK/dev.log" >&2; fail "GET $DEV_API with the printed test key: $with_key, not 200"; }
echo "  make dev          test key ${DEV_KEY:0:16}… after $(($(date +%s) - began)) s; GET /v1/integrations: 401 without a key, $with_key with it"
dev_stop || fail "make dev did not stop cleanly"
echo "  make dev          stopped: nothing answers on $DEV_PORT (API) or $DEV_EMULATOR_PORT (emulator)"

# ---- make simulate -------------------------------------------------------------------
(cd "$SRC" && SIM_OPERATIONS=4000 exec make --no-print-directory simulate) >"$WORK/simulate.log" 2>&1 ||
  { cat "$WORK/simulate.log" >&2; fail "make simulate failed"; }
summary=$(grep -E '^simulate: [0-9]+ operations, [0-9]+ seeds, 0 violations( \([^)]*\))?$' "$WORK/simulate.log") ||
  { cat "$WORK/simulate.log" >&2; fail "make simulate printed no summary with 0 violations"; }
echo "  make simulate     $summary"

[ ! -e "$SRC/target" ] || fail "something built into the copy's ./target"
echo "target-dir-smoke: ok in $(($(date +%s) - began)) s"

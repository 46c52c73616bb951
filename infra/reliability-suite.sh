#!/usr/bin/env bash
# `make reliability`: the long reliability runs, then their figures in one table
# (.local/reliability/figures.md, the source of docs/RELIABILITY.md's numbers).
#   1. Rust suites at full size: fault injection with every fault kind at every step
#      (FAULTS=all), races over more rounds, the isolation property over more sequences,
#      the secret-canary scan.
#   2. schemathesis against openapi.yaml and the dev server (infra/reliability.sh).
# Knobs: RACE_ROUNDS (default 10), PROPTEST_CASES (default 200), RELIABILITY_EXAMPLES.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
OUT="$STATE/reliability"
mkdir -p "$OUT"
# The Rust suites run against the IAM-enforcing emulator, as in `make test`;
# infra/reliability.sh brings up the open one the dev server uses itself.
if [ "${1:-}" != --figures-only ]; then
  started=$(AWS_ENDPOINT_URL="$TEST_ENDPOINT" bash infra/emulator.sh start-iam)
  [ "$started" = started ] && trap 'AWS_ENDPOINT_URL="$TEST_ENDPOINT" bash infra/emulator.sh stop' EXIT
fi

rust_log="$STATE/reliability-rust.log"
fuzz_log="$STATE/reliability-schemathesis.log"
if [ "${1:-}" != --figures-only ]; then
  # The integration binary's suites are its modules, chosen by filter (several filters
  # are OR'ed); hostile input runs on its own so that its `test result:` line is its figure.
  suite() { cargo test -p shared "$@" --nocapture --test-threads 1; }
  (
    export AWS_ENDPOINT_URL="$TEST_ENDPOINT" FAULTS=all RACE_ROUNDS="${RACE_ROUNDS:-10}" PROPTEST_CASES="${PROPTEST_CASES:-200}"
    suite --test integration -- faults:: races:: isolation:: || exit
    suite --test leak -- || exit
    echo "== hostile_input"
    suite --test integration -- hostile_input::
  ) 2>&1 | tee "$rust_log"
  status=${PIPESTATUS[0]}
  [ "$status" -eq 0 ] || { echo "reliability: Rust suites failed" >&2; exit "$status"; }
  bash infra/reliability.sh | tee "$fuzz_log"
fi

# The summary lines the suites print (test names may precede them on the same line).
figure() { grep -ohE "$1: .*" "$2" | tail -1 | sed "s/^$1: //" || true; }
{
  echo "| measure | figure |"
  echo "|---|---|"
  echo "| faults × steps injected and survived | $(figure 'fault injection' "$rust_log") |"
  echo "| racers and rounds | $(figure races "$rust_log") |"
  echo "| tenant-isolation property cases | $(figure isolation "$rust_log") |"
  echo "| secret canary scan | $(figure 'leak scan' "$rust_log") |"
  echo "| hostile input (Rust) | $(awk '/^== hostile_input$/{f=1} f&&/^test result:/{print; exit}' "$rust_log") |"
  echo "| schemathesis + hand-written hostile requests | $(figure schemathesis "$fuzz_log") |"
  echo "| machine | $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -m), $(date -u +%Y-%m-%d) |"
} >"$OUT/figures.md"
echo
cat "$OUT/figures.md"

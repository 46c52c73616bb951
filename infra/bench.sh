#!/usr/bin/env bash
# `make bench`: release builds of the functions and the harness (native, same profile as
# the Lambda builds), the emulator, then the harness's table (docs/PERFORMANCE.md).
# BENCH_ITERATIONS (default 1000) warm invocations per read/edit route.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
cargo build --release -q -p get -p list -p update -p credentials -p connect -p disconnect -p restore -p connectors-bench
started=$(bash infra/emulator.sh start)
[ "$started" = started ] && trap 'bash infra/emulator.sh stop' EXIT
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -m), $(date -u +%Y-%m-%dT%H:%MZ)"
target/release/bench
echo
echo "bootstrap sizes (native $(uname -m), release profile):"
for f in get list update credentials connect disconnect restore; do
  printf '  %-12s %8d bytes\n' "$f" "$(stat -c %s "target/release/$f")"
done
printf '  %-12s %8d bytes\n' "hello-lambda" "$(stat -c %s target/release/hello-lambda)"

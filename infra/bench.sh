#!/usr/bin/env bash
# `make bench`: release builds of the functions and the harness (native, same profile as
# the Lambda builds), the emulator, then the harness's table (docs/PERFORMANCE.md).
# BENCH_ITERATIONS (default 1000) warm invocations per read/edit route.
# `--smoke` (`make bench-smoke`, run by CI): debug builds and a few iterations, only to
# keep the harness and the functions-as-Lambda-processes path working; no figures.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
functions=(get list update credentials connect disconnect restore)
profile=release; flag=--release
if [ "${1:-}" = --smoke ]; then
  profile=debug; flag=
  export BENCH_ITERATIONS=3 BENCH_COLD_STARTS=2 BENCH_BIN_DIR=target/debug
fi
packages=(); for f in "${functions[@]}"; do packages+=(-p "$f"); done
cargo build $flag -q "${packages[@]}" -p connectors-bench
started=$(bash infra/emulator.sh start)
[ "$started" = started ] && trap 'bash infra/emulator.sh stop' EXIT
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -m), $(date -u +%Y-%m-%dT%H:%MZ)"
"target/$profile/bench"
echo
echo "bootstrap sizes (native $(uname -m), $profile profile):"
for f in "${functions[@]}" hello-lambda; do
  printf '  %-12s %8d bytes\n' "$f" "$(stat -c %s "target/$profile/$f")"
done

#!/usr/bin/env bash
# `make bench`: release builds of the functions, the floor and the harness (native, same
# profile as the Lambda builds), the emulator, then the harness's tables
# (docs/PERFORMANCE.md): every route at every memory size under Lambda's CPU share,
# behind TLS, with its cost. Settings: see bench/src/main.rs (BENCH_ITERATIONS, BENCH_WRITE_CALLS,
# BENCH_COLD_STARTS, BENCH_MEMORY_SIZES, BENCH_ONLY, BENCH_LEVERS).
# `--smoke` (`make bench-smoke`, run by CI): debug builds, one memory size, a few calls,
# no levers: only to keep the harness and the functions-as-Lambda-processes path working.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
functions=(get list update credentials connect disconnect restore report)
profile=release; flag=--release
if [ "${1:-}" = --smoke ]; then
  profile=debug; flag=
  export BENCH_ITERATIONS=3 BENCH_WRITE_CALLS=3 BENCH_COLD_STARTS=2 BENCH_MEMORY_SIZES=1024 BENCH_LEVERS=0
fi
packages=(); for f in "${functions[@]}"; do packages+=(-p "$f"); done
cargo build $flag -q "${packages[@]}" -p connectors-bench
cargo_target_dir
BIN="$TARGET_DIR/$profile"
export BENCH_BIN_DIR="${BENCH_BIN_DIR:-$BIN}"  # the functions, built beside the harness
started=$(bash infra/emulator.sh start)
[ "$started" = started ] && trap 'bash infra/emulator.sh stop' EXIT
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -m), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "bootstrap sizes (native $(uname -m), $profile profile):"
for f in "${functions[@]}" floor; do
  printf '  %-13s %8d bytes\n' "$f" "$(stat -c %s "$BENCH_BIN_DIR/$f")"
done
echo
# Last: the table, then one `cold-first-answer route=… mb=…` line per route, then one
# `critical-path route=… round_trips=N aws_calls=M` line per route measured at 128 MB.
"$BIN/bench"

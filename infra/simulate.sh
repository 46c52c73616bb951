#!/usr/bin/env bash
# `make simulate`: the deterministic lifecycle simulation (no emulator, no sockets), built
# optimised (profile `sim`). SIM_OPERATIONS sets the budget (default 1,000,000); SEED
# replays one seed with its trace. Ends with `simulate: <N> operations, <S> seeds, <V> violations`.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
cargo build --quiet --profile sim -p sim
cargo_target_dir
exec "$TARGET_DIR/sim/sim"

#!/usr/bin/env bash
# `make build`: release bootstraps for Lambda (arm64, provided.al2023) with cargo-lambda,
# then their sizes. ARCH=x86_64 builds for x86_64 instead.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
bash infra/tools.sh
export PATH="$ROOT/.venv-sam/bin:$PATH"
arch_flag="--arm64"; [ "${ARCH:-arm64}" = x86_64 ] && arch_flag="--x86-64"
packages=()
for dir in functions/*/; do packages+=(--package "$(basename "$dir")"); done
cargo lambda build --release "$arch_flag" "${packages[@]}"
# cargo-lambda writes <target dir>/lambda/<fn>/bootstrap, the target dir being the one
# `cargo metadata` names (CARGO_TARGET_DIR honoured); SAM's rust-cargolambda build reads
# the same place.
cargo_target_dir
echo "== bootstrap sizes (${ARCH:-arm64})"
for f in "$TARGET_DIR"/lambda/*/bootstrap; do
  fn=$(basename "$(dirname "$f")")
  [ -d "functions/$fn" ] || continue
  printf '%-12s %8d bytes  %s\n' "$fn" "$(stat -c %s "$f")" "$(file -b "$f" 2>/dev/null | cut -d, -f1-2)"
done

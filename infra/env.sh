# Sourced by the other scripts: the local stack's environment, overridable from outside.
export AWS_ENDPOINT_URL="${AWS_ENDPOINT_URL:-http://127.0.0.1:4566}"
export AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-testing}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-testing}"
export AWS_EC2_METADATA_DISABLED=true
# The IAM-enforcing emulator `make test` starts (infra/emulator.sh start-iam): never the
# one above, which `make dev` runs open to any credentials.
TEST_ENDPOINT="${TEST_AWS_ENDPOINT_URL:-http://127.0.0.1:4567}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STATE="$ROOT/.local"
mkdir -p "$STATE"
# Where cargo puts what it builds: CARGO_TARGET_DIR, a cargo config's build.target-dir, or
# ./target. Asked of cargo (`cargo metadata`'s target_directory, resolved from $ROOT as the
# scripts' builds are), never assumed. `cargo_target_dir` sets TARGET_DIR the first time a
# script needs it; later calls reuse it. Run binaries as "$TARGET_DIR/<profile>/<name>".
TARGET_DIR=
cargo_target_dir() {
  [ -n "$TARGET_DIR" ] && return 0
  TARGET_DIR=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])') &&
    [ -n "$TARGET_DIR" ] || { echo "cargo metadata did not name a target directory" >&2; return 1; }
}

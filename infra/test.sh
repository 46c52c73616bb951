#!/usr/bin/env bash
# `make test`: lint, the deployed stack's checks (infra/stack: the template translated per
# stage as SAM deploys it, offline), an IAM-enforcing emulator of its own (installed and started if
# needed, at TEST_AWS_ENDPOINT_URL, default http://127.0.0.1:4567; `make dev`'s open one
# is never used), the whole workspace's tests against it (cargo prints a `test result:`
# line per test binary), the generated Python client against `make dev` on free ports
# (infra/client.sh), then their total. Stops only what it started.
set -uo pipefail
source "$(dirname "$0")/env.sh"
export AWS_ENDPOINT_URL="$TEST_ENDPOINT"
cd "$ROOT"
bash infra/lint.sh || exit 1
started=$(bash infra/emulator.sh start-iam) || exit 1
[ "$started" = started ] && trap 'bash infra/emulator.sh stop' EXIT
log="$STATE/test-output.log"
echo "== the deployed stack, per stage (infra/stack)"
# The translator's own log lines (feature toggles, metrics) are not ours to show.
.venv-sam/bin/python -m unittest discover -s infra/stack -p 'test_*.py' 2>&1 |
  grep -v -e "not available in Feature Toggle Config" -e "unpublished metrics" | tee "$log"
stack_status=${PIPESTATUS[0]}
cargo test --workspace --no-fail-fast --color never 2>&1 | tee -a "$log"
status=${PIPESTATUS[0]}
[ "$stack_status" -eq 0 ] || status=$stack_status
echo "== the Python client generated from openapi.yaml, against make dev (infra/client.sh)"
bash infra/client.sh 2>&1 | tee -a "$log"
client_status=${PIPESTATUS[0]}
[ "$client_status" -eq 0 ] || status=$client_status
echo
python3 infra/totals.py "$log"
exit "$status"

#!/usr/bin/env bash
# Offline checks: cfn-lint and `sam validate --lint` on template.yaml; outside scanners
# (cfn-lint's serverless rules, checkov, parliament) on it and on the stack each stage
# deploys (infra/scan.py, skips in infra/scan-skips.yaml); the OpenAPI 3.1 document against
# its meta-schema; and the Python under infra/ (pyflakes, then the unit tests of its pure
# helpers).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
bash infra/tools.sh
export SAM_CLI_TELEMETRY=0
echo "== cfn-lint template.yaml"
.venv-sam/bin/cfn-lint template.yaml
echo "== sam validate --lint"
.venv-sam/bin/sam validate --lint --region "${AWS_REGION}"
# Outside scanners (infra/scan.py), offline, over template.yaml and the stack each stage
# deploys; what they find is fixed or skipped with a reason in infra/scan-skips.yaml.
for stage in dev prod; do
  if ! .venv-sam/bin/python infra/stack/translate.py "$stage" >"$STATE/stack-$stage.json" 2>"$STATE/translate-$stage.log"; then
    cat "$STATE/translate-$stage.log" >&2
    exit 1
  fi
done
stacks=("$STATE/stack-dev.json" "$STATE/stack-prod.json")
scans=0  # all three run, so one lint shows every finding
echo "== cfn-lint + serverless rules: template.yaml, translated dev and prod stacks"
.venv-scan/bin/python infra/scan.py cfn-lint template.yaml "${stacks[@]}" || scans=1
echo "== checkov (cloudformation, offline): template.yaml, translated dev and prod stacks"
.venv-scan/bin/python infra/scan.py checkov template.yaml "${stacks[@]}" || scans=1
echo "== parliament: IAM policy documents of the dev and prod stacks"
.venv-scan/bin/python infra/scan.py iam "${stacks[@]}" || scans=1
[ "$scans" = 0 ] || { echo "scanner findings: fix template.yaml or skip them with a reason in infra/scan-skips.yaml" >&2; exit 1; }
echo "== openapi.yaml (OpenAPI 3.1)"
.venv-sam/bin/python - <<'PY'
import yaml
from openapi_spec_validator import validate
validate(yaml.safe_load(open("openapi.yaml")))
print("openapi.yaml is a valid OpenAPI 3.1 document")
PY
echo "== Python under infra/ (pyflakes, unit tests)"
.venv-sam/bin/pyflakes infra
python3 -m unittest discover -s infra -p 'test_*.py'

#!/usr/bin/env bash
# Offline checks: cfn-lint and `sam validate --lint` on template.yaml, the OpenAPI 3.1
# document against its meta-schema, and the Python under infra/ (pyflakes, then the unit
# tests of its pure helpers).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
bash infra/tools.sh
export SAM_CLI_TELEMETRY=0
echo "== cfn-lint template.yaml"
.venv-sam/bin/cfn-lint template.yaml
echo "== sam validate --lint"
.venv-sam/bin/sam validate --lint --region "${AWS_REGION}"
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

#!/usr/bin/env bash
# Offline checks of the deployment artefacts: cfn-lint and `sam validate --lint` on
# template.yaml, and the OpenAPI 3.1 document against its meta-schema.
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

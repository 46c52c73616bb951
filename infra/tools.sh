#!/usr/bin/env bash
# Installs the tooling into two virtualenvs, each pinned and stamped (a second run with
# the same pins is instant):
# - .venv-sam: SAM CLI (which pins its own boto3, so it stays apart from the emulator's
#   venv), cfn-lint, an OpenAPI validator, cargo-lambda (which brings zig for
#   cross-compiling to arm64) and pyflakes (infra/lint.sh's check of the Python under
#   infra/);
# - .venv-scan: the template scanners infra/scan.py runs (checkov pins a boto3 and a
#   networkx older than SAM CLI's, so they cannot share .venv-sam): checkov, cfn-lint
#   (.venv-sam's version) with the serverless rules, and parliament (IAM policies).
set -euo pipefail
source "$(dirname "$0")/env.sh"

# pinned_venv DIR EXECUTABLE PIN...: DIR holds exactly these pins (DIR/bin/EXECUTABLE
# stands for a finished install).
pinned_venv() {
  local dir="$1" executable="$2"; shift 2
  local stamp="$dir/.pins"
  if [ -x "$dir/bin/$executable" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$*" ]; then
    return 0
  fi
  echo "installing $* into $dir" >&2
  python3 -m venv "$dir"
  "$dir/bin/pip" install --quiet --disable-pip-version-check "$@"
  echo "$*" >"$stamp"
}

pinned_venv "$ROOT/.venv-sam" sam \
  aws-sam-cli==1.170.0 cfn-lint==1.58.0 cargo-lambda==1.9.2 openapi-spec-validator==0.7.2 pyflakes==4.1.0
pinned_venv "$ROOT/.venv-scan" checkov \
  checkov==3.3.30 cfn-lint==1.58.0 cfn-lint-serverless==0.3.6 parliament==1.6.4

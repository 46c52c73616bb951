#!/usr/bin/env bash
# Installs the deployment tooling into its own virtualenv (.venv-sam): SAM CLI (which
# pins its own boto3, so it stays apart from the emulator's venv), cfn-lint, an OpenAPI
# validator, cargo-lambda (which brings zig for cross-compiling to arm64) and pyflakes
# (infra/lint.sh's check of the Python under infra/).
set -euo pipefail
source "$(dirname "$0")/env.sh"
TOOLS="$ROOT/.venv-sam"
PINS=(aws-sam-cli==1.170.0 cfn-lint==1.58.0 cargo-lambda==1.9.2 openapi-spec-validator==0.7.2 pyflakes==4.1.0)
stamp="$TOOLS/.pins"
if [ -x "$TOOLS/bin/sam" ] && [ "$(cat "$stamp" 2>/dev/null)" = "${PINS[*]}" ]; then
  exit 0
fi
echo "installing ${PINS[*]} into $TOOLS" >&2
python3 -m venv "$TOOLS"
"$TOOLS/bin/pip" install --quiet --disable-pip-version-check "${PINS[@]}"
echo "${PINS[*]}" >"$stamp"

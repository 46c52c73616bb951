#!/usr/bin/env bash
# Installs the template scanners infra/scan.sh runs into their own virtualenv (.venv-scan):
# checkov pins a boto3 and a networkx older than SAM CLI's, so they cannot share .venv-sam.
# cfn-lint is pinned to .venv-sam's version, here with the serverless rules
# (cfn-lint-serverless); parliament is the IAM policy linter infra/scan_iam.py drives.
set -euo pipefail
source "$(dirname "$0")/env.sh"
SCAN="$ROOT/.venv-scan"
PINS=(checkov==3.3.30 cfn-lint==1.58.0 cfn-lint-serverless==0.3.6 parliament==1.6.4)
stamp="$SCAN/.pins"
if [ -x "$SCAN/bin/checkov" ] && [ "$(cat "$stamp" 2>/dev/null)" = "${PINS[*]}" ]; then
  exit 0
fi
echo "installing ${PINS[*]} into $SCAN" >&2
python3 -m venv "$SCAN"
"$SCAN/bin/pip" install --quiet --disable-pip-version-check "${PINS[@]}"
echo "${PINS[*]}" >"$stamp"

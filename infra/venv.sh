#!/usr/bin/env bash
# Creates the project-local virtualenv with the AWS-API emulator (moto server) if missing.
set -euo pipefail
source "$(dirname "$0")/env.sh"
MOTO_VERSION=5.2.5
if [ -x "$VENV/bin/moto_server" ] && "$VENV/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
  exit 0
fi
echo "installing moto[server]==$MOTO_VERSION into $VENV" >&2
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"

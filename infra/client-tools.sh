#!/usr/bin/env bash
# Installs the Python client generator (openapi-python-client, pinned) into its own
# virtualenv (.venv-client), and downloads into .venv-client/wheels what the package it
# generates needs to install: its build backend (poetry-core) and its dependencies (httpx,
# attrs). After this, generating the client and installing it (infra/client.sh) need no
# network. A stamp file holds the pins; a changed pin reinstalls.
set -euo pipefail
source "$(dirname "$0")/env.sh"
CLIENT_VENV="$ROOT/.venv-client"
PINS=(openapi-python-client==0.29.1)
WHEELS=(poetry-core==2.5.0 httpx==0.28.1 attrs==26.1.0)
stamp="$CLIENT_VENV/.pins"
if [ -x "$CLIENT_VENV/bin/openapi-python-client" ] && [ "$(cat "$stamp" 2>/dev/null)" = "${PINS[*]} ${WHEELS[*]}" ]; then
  exit 0
fi
echo "installing ${PINS[*]} into $CLIENT_VENV, wheels of ${WHEELS[*]} into $CLIENT_VENV/wheels" >&2
python3 -m venv "$CLIENT_VENV"
"$CLIENT_VENV/bin/pip" install --quiet --disable-pip-version-check "${PINS[@]}"
rm -rf "$CLIENT_VENV/wheels"
"$CLIENT_VENV/bin/pip" download --quiet --disable-pip-version-check -d "$CLIENT_VENV/wheels" "${WHEELS[@]}"
echo "${PINS[*]} ${WHEELS[*]}" >"$stamp"

#!/usr/bin/env bash
# The generated Python client works (run by `make test`, infra/test.sh): generates a
# client from openapi.yaml with the pinned openapi-python-client (.venv-client,
# infra/client-tools.sh; warnings fail it), pip-installs the generated package into a
# throwaway virtualenv with no index (its build backend and dependencies come from
# .venv-client/wheels), starts `make dev` on free ports (infra/dev-background.sh), makes a
# key with every scope for a fresh entity with the admin CLI, and runs infra/client_walk.py
# (unittest) in the throwaway venv: connect → credentials → get → list → disconnect →
# restore → permanent delete through the generated functions, each answer parsed into the
# generated models. The generated package is left in .local/client/ to look at.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
began=$(date +%s)
bash infra/client-tools.sh
bash infra/venv.sh
CLIENT_VENV="$ROOT/.venv-client"
OUT="$STATE/client"
source "$ROOT/infra/dev-background.sh"
dev_scratch client

# Generate: ruff (the generator's post-processing) comes from .venv-client too.
rm -rf "$OUT"
mkdir -p "$OUT"
PATH="$CLIENT_VENV/bin:$PATH" openapi-python-client generate --path "$ROOT/openapi.yaml" \
  --config "$ROOT/infra/client/config.yaml" --output-path "$OUT/connectors-client" --fail-on-warning \
  >"$WORK/generate.log" 2>&1 || { cat "$WORK/generate.log" >&2; exit 1; }
# Install it as a user would, but offline.
python3 -m venv --without-pip "$WORK/venv"
"$CLIENT_VENV/bin/pip" --python "$WORK/venv/bin/python" install --quiet --disable-pip-version-check \
  --no-index --find-links "$CLIENT_VENV/wheels" "$OUT/connectors-client"

# The dev server, and a key for a fresh entity from the admin CLI.
dev_start "$ROOT" "$WORK/dev.log"
cargo_target_dir
entity=$(python3 -c 'import uuid; print(uuid.uuid4())')
key=$(AWS_ENDPOINT_URL="http://127.0.0.1:$DEV_EMULATOR_PORT" "$TARGET_DIR/debug/connectors-admin" keys create \
  --entity "$entity" --scope integrations:read --scope integrations:write \
  --scope integrations:credentials --scope integrations:purge --scope integrations:sync | tail -n 1)

document_version=$("$CLIENT_VENV/bin/python" -c 'import sys; from ruamel.yaml import YAML; print(YAML(typ="safe").load(open(sys.argv[1]))["info"]["version"])' "$ROOT/openapi.yaml")
CLIENT_BASE="http://127.0.0.1:$DEV_PORT" CLIENT_KEY="$key" CLIENT_ENTITY="$entity" \
  CLIENT_DOCUMENT_VERSION="$document_version" \
  "$WORK/venv/bin/python" infra/client_walk.py -v
dev_stop
echo "client: ok in $(($(date +%s) - began)) s"

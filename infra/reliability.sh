#!/usr/bin/env bash
# `make reliability`: hostile-input fuzzing of the dev server against openapi.yaml.
#
# schemathesis (pinned, installed into .venv next to moto) generates positive and negative
# requests for every operation and checks each response against the document: no 5xx, a
# documented status, content type, headers and body schema, negative data rejected, auth not
# ignored, 405 with Allow. Four runs: a live key with every scope (the big one), a test key,
# no Authorization header, a garbage one. Then hand-written hostile requests go through the
# same checks: what only a real HTTP server sees (raw paths, non-UTF-8 header bytes, HEAD,
# bodies cut off by the dev server's read limit, concurrent bursts) and what no Rust test
# sends. Stored credential values are canaries: none may come back. The Python half (keys,
# seed, schemathesis hooks and config, hostile requests, summary) is infra/reliability/.
#
# Everything runs against a table, bus and secret prefix of its own, so `make dev` data is
# never touched; the emulator and dev server are stopped only if this script started them.
# Output in .local/reliability/: schemathesis.txt (key=value summary), junit-*.xml,
# *.ndjson, *.json. Last line: `schemathesis: N cases, F failures`; exit 1 on any failure.
#
# Knobs: RELIABILITY_EXAMPLES (fuzzing examples per operation in the main run, default 150),
# RELIABILITY_SEED (schemathesis seed, default random).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
SCHEMATHESIS_VERSION=4.32.5 EXAMPLES="${RELIABILITY_EXAMPLES:-150}"
OUT="$STATE/reliability" KEYS="$STATE/reliability/work/keys.json" PY="$VENV/bin/python"
export PYTHONPATH="$ROOT/infra${PYTHONPATH:+:$PYTHONPATH}"
RUN_ID="fz$(date +%s)$$"  # resources of this run only
export CONNECTORS_TABLE="connectors-$RUN_ID" EVENT_BUS_NAME="integrations-$RUN_ID"
export SECRET_PREFIX="reliability/$RUN_ID/" RUST_LOG="${RUST_LOG:-warn}"
rm -rf "$OUT"; mkdir -p "$OUT/work"; started_at=$(date +%s)

# ---- tools ----------------------------------------------------------------------------------
bash infra/venv.sh
if ! "$PY" -c "import schemathesis, sys; sys.exit(schemathesis.__version__ != '$SCHEMATHESIS_VERSION')" 2>/dev/null; then
  echo "installing schemathesis==$SCHEMATHESIS_VERSION into $VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
cargo build -q --bin connectors-admin --bin connectors-dev
cargo_target_dir

# ---- stack: emulator, keys, dev server ------------------------------------------------------
started=$(bash infra/emulator.sh start)
DEV_PID=
cleanup() {
  local rc=$?
  if [ -n "$DEV_PID" ]; then kill "$DEV_PID" 2>/dev/null || true; wait "$DEV_PID" 2>/dev/null || true; fi
  if [ "$started" = started ]; then bash infra/emulator.sh stop
  else "$PY" -m reliability.cleanup >/dev/null 2>&1 || true; fi  # a reused emulator keeps running
  exit "$rc"
}
trap cleanup EXIT; trap 'exit 130' INT TERM
"$TARGET_DIR/debug/connectors-admin" bootstrap >/dev/null
"$PY" -m reliability.keys "$TARGET_DIR/debug/connectors-admin" "$KEYS"
PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'); BASE="http://127.0.0.1:$PORT"
PORT="$PORT" "$TARGET_DIR/debug/connectors-dev" >"$OUT/dev-server.log" 2>&1 & DEV_PID=$!
for _ in $(seq 1 100); do
  code=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/v1/integrations" 2>/dev/null || true)
  [ "$code" = 401 ] && break
  kill -0 "$DEV_PID" 2>/dev/null || { echo "connectors-dev exited; see $OUT/dev-server.log" >&2; exit 1; }
  sleep 0.2
done
[ "$code" = 401 ] || { echo "connectors-dev did not answer on $BASE" >&2; exit 1; }
printf '  emulator     %s (%s)\n  table        %s (bus %s, secrets %s)\n  API          %s/v1/integrations\n' \
  "$AWS_ENDPOINT_URL" "$started" "$CONNECTORS_TABLE" "$EVENT_BUS_NAME" "$SECRET_PREFIX" "$BASE"
echo "  schemathesis $SCHEMATHESIS_VERSION, $EXAMPLES fuzzing examples per operation (main run)"

# ---- runs: seed rows for the key set, then schemathesis, or the hand-written requests -------
# Every check except positive_data_acceptance: the document cannot express the catalog's
# per-type credential keys, cursors that must name an existing row or the no-control-
# characters rule, so schema-valid requests are rightly refused there with 400/422.
seed() { "$PY" -m reliability.seed "$BASE" "$KEYS" "$1"; }
key() { "$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]][sys.argv[3]])' "$KEYS" "$1" "$2"; }
declare -A RC
run_st() {  # name, key (empty: none), then schemathesis arguments
  local name=$1 key=$2 rc=0 config=schemathesis.toml; shift 2
  [ -n "$key" ] || config=schemathesis-no-auth.toml
  printf '\n== schemathesis: %s\n' "$name"
  (cd "$OUT/work" && FUZZ_KEY="$key" SCHEMATHESIS_HOOKS=reliability.hooks "$VENV/bin/schemathesis" \
    --config-file "$ROOT/infra/reliability/$config" run "$ROOT/openapi.yaml" --url "$BASE" \
    --checks all --exclude-checks positive_data_acceptance --mode all --continue-on-failure \
    --request-timeout 30 --workers 1 --generation-database none --output-sanitize false --no-color \
    ${RELIABILITY_SEED:+--seed "$RELIABILITY_SEED"} --report junit,ndjson,json \
    --report-junit-path "$OUT/junit-$name.xml" --report-ndjson-path "$OUT/$name.ndjson" \
    --report-json-path "$OUT/$name.json" "$@") >"$OUT/$name.log" 2>&1 || rc=$?
  RC[$name]=$rc
  grep -E '^ *(Test cases:|[0-9]+ generated|Seed:|=+ .* in [0-9.]+s =+$)' "$OUT/$name.log" | sed 's/^ */  /' || true
}
seed main; run_st main "$(key main live)" --max-examples "$EXAMPLES"
seed test-key; run_st test-key "$(key test-key test)" --max-examples $((EXAMPLES / 3 > 0 ? EXAMPLES / 3 : 1))
run_st no-auth "" --phases fuzzing --max-examples 15
run_st garbage-auth "ark_live_ent_garbage0000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" --phases fuzzing --max-examples 15
seed hostile; printf '\n== hostile requests\n'; hostile_rc=0
EMULATOR_LOG="$STATE/moto-${AWS_ENDPOINT_URL##*:}.log" "$PY" -m reliability.hostile "$ROOT/openapi.yaml" "$BASE" \
  "$KEYS" "$OUT/hostile.ndjson" 2>&1 | tee "$OUT/hostile.log" || hostile_rc=$?

# ---- summary --------------------------------------------------------------------------------
echo; server_alive=yes; kill -0 "$DEV_PID" 2>/dev/null || server_alive=no
rcs=""; for name in "${!RC[@]}"; do rcs+="$name=${RC[$name]} "; done
"$PY" -m reliability.summary "$OUT" "$KEYS" "$SCHEMATHESIS_VERSION" "$server_alive" \
  "$(( $(date +%s) - started_at ))" "$hostile_rc" "$rcs" "$EXAMPLES" "$BASE"

# Sourced by dev.sh and sam_local.sh: bootstraps the table, TTL, bus and the idempotency
# fingerprint key's secret on the emulator at AWS_ENDPOINT_URL, makes a fresh test key and
# live key for the demo entity (kept in .local/demo-entity across runs), and prints them
# with the API's URL ($1). Needs connectors-admin built (debug) and TARGET_DIR set
# (cargo_target_dir, infra/env.sh).
demo_banner() {
  local api="$1" started="$2"
  admin() { "$TARGET_DIR/debug/connectors-admin" "$@"; }
  # The fingerprint key's secret env.json names for sam local: the bootstrap creates it,
  # and the dev server reads it too (exported, so it is set for what runs after).
  IDEMPOTENCY_FINGERPRINT_KEY_SECRET=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["Parameters"]["IDEMPOTENCY_FINGERPRINT_KEY_SECRET"])' "$ROOT/env.json")
  export IDEMPOTENCY_FINGERPRINT_KEY_SECRET
  admin bootstrap
  [ -s "$STATE/demo-entity" ] || python3 -c 'import uuid; print(uuid.uuid4())' >"$STATE/demo-entity"
  ENTITY=$(cat "$STATE/demo-entity")
  local all=(--scope integrations:read --scope integrations:write --scope integrations:credentials --scope integrations:purge --scope integrations:sync)
  TEST_KEY=$(admin keys create --entity "$ENTITY" "${all[@]}" | tail -n 1)
  LIVE_KEY=$(admin keys create --entity "$ENTITY" "${all[@]}" --live | tail -n 1)
  cat <<MSG

  emulator     $AWS_ENDPOINT_URL ($started)
  demo entity  $ENTITY
  test key     $TEST_KEY
  live key     $LIVE_KEY
  API          $api/v1/integrations

  export KEY=$TEST_KEY
  curl -s $api/v1/integrations -H "Authorization: Bearer \$KEY"

MSG
}

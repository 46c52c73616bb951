# Sourced by dev.sh and sam_local.sh: bootstraps the table, TTL and bus on the emulator at
# AWS_ENDPOINT_URL, makes a fresh test key and live key for the demo entity (kept in
# .local/demo-entity across runs), and prints them with the API's URL ($1).
demo_banner() {
  local api="$1" started="$2"
  admin() { "$ROOT/target/debug/connectors-admin" "$@"; }
  admin bootstrap
  [ -s "$STATE/demo-entity" ] || python3 -c 'import uuid; print(uuid.uuid4())' >"$STATE/demo-entity"
  ENTITY=$(cat "$STATE/demo-entity")
  local all=(--scope integrations:read --scope integrations:write --scope integrations:credentials --scope integrations:purge)
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

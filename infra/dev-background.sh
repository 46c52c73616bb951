# Sourced by infra/target_dir_smoke.sh and infra/client.sh: `make dev` in the background,
# on a free API port with an emulator of its own on another free port, so that a `make dev`
# already running (on 3000 and 4566) is neither reused nor disturbed.

# dev_scratch NAME: a scratch directory in WORK, removed on exit together with the dev
# server dev_start started (Ctrl-C too).
dev_scratch() {
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
  trap _dev_scratch_cleanup EXIT
  trap 'exit 130' INT TERM
}
_dev_scratch_cleanup() {
  local rc=$?
  dev_stop || true
  rm -rf "$WORK"
  exit "$rc"
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

answers() {  # PORT: something accepts connections on 127.0.0.1:PORT
  python3 - "$1" <<'PY'
import socket, sys
s = socket.socket(); s.settimeout(0.5)
sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)
PY
}

DEV_PGID=
# dev_start DIR LOG: runs `make dev` in DIR (its own process group; output in LOG) and
# returns once it has printed its test key and answers GET /v1/integrations without a key
# with 401 (within 300 s: cargo may first rebuild). Sets DEV_PGID, DEV_PORT,
# DEV_EMULATOR_PORT, DEV_API (…/v1/integrations) and DEV_KEY (the printed test key).
dev_start() {
  local dir=$1 log=$2 code= deadline
  DEV_EMULATOR_PORT=$(free_port)
  DEV_PORT=$(free_port)
  [ "$DEV_PORT" != "$DEV_EMULATOR_PORT" ] || DEV_PORT=$(free_port)
  DEV_API="http://127.0.0.1:$DEV_PORT/v1/integrations"
  DEV_KEY=
  set -m  # its own process group: stopped as Ctrl-C stops it, with everything it started
  (cd "$dir" && AWS_ENDPOINT_URL="http://127.0.0.1:$DEV_EMULATOR_PORT" PORT="$DEV_PORT" \
    exec make --no-print-directory dev) >"$log" 2>&1 &
  DEV_PGID=$!
  set +m
  deadline=$(($(date +%s) + 300))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    kill -0 "$DEV_PGID" 2>/dev/null || { cat "$log" >&2; echo "make dev exited" >&2; return 1; }
    DEV_KEY=$(awk '$1 == "test" && $2 == "key" {print $3}' "$log")
    if [ -n "$DEV_KEY" ]; then
      code=$(curl -s -o /dev/null -w '%{http_code}' "$DEV_API" 2>/dev/null || true)
      [ "$code" = 401 ] && return 0
    fi
    sleep 0.2
  done
  cat "$log" >&2
  echo "make dev did not answer 401 on $DEV_API within 300 s (last: ${code:-nothing})" >&2
  return 1
}

# dev_stop: stops it as Ctrl-C would (its trap stops the server and its emulator), then
# fails if either still answers. Harmless when nothing runs.
dev_stop() {
  [ -n "$DEV_PGID" ] || return 0
  kill -INT -- "-$DEV_PGID" 2>/dev/null || true
  wait "$DEV_PGID" 2>/dev/null || true
  DEV_PGID=
  for _ in $(seq 1 100); do
    answers "$DEV_PORT" || answers "$DEV_EMULATOR_PORT" || return 0
    sleep 0.1
  done
  echo "after make dev stopped, something still answers on $DEV_PORT or $DEV_EMULATOR_PORT" >&2
  return 1
}

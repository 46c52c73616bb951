#!/usr/bin/env bash
# start: runs moto server on the host and port of AWS_ENDPOINT_URL unless something already
#        answers there (then it is reused and left alone). Prints "started" or "reused".
# stop:  stops the server only if `start` started it.
set -euo pipefail
source "$(dirname "$0")/env.sh"
hostport="${AWS_ENDPOINT_URL#*://}"; hostport="${hostport%%/*}"
HOST="${hostport%:*}"; PORT="${hostport##*:}"
PIDFILE="$STATE/moto-$PORT.pid"

listening() {
  python3 - "$HOST" "$PORT" <<'PY'
import socket, sys
s = socket.socket(); s.settimeout(0.5)
sys.exit(0 if s.connect_ex((sys.argv[1], int(sys.argv[2]))) == 0 else 1)
PY
}

case "${1:-}" in
  start)
    if listening; then echo reused; exit 0; fi
    bash "$ROOT/infra/venv.sh"
    nohup "$VENV/bin/moto_server" -H "$HOST" -p "$PORT" >"$STATE/moto-$PORT.log" 2>&1 &
    echo $! >"$PIDFILE"
    for _ in $(seq 1 100); do
      if listening; then echo started; exit 0; fi
      sleep 0.1
    done
    echo "moto server did not start; see $STATE/moto-$PORT.log" >&2
    exit 1
    ;;
  stop)
    if [ -f "$PIDFILE" ]; then
      kill "$(cat "$PIDFILE")" 2>/dev/null || true
      rm -f "$PIDFILE"
    fi
    ;;
  *)
    echo "usage: $0 start|stop" >&2; exit 2 ;;
esac

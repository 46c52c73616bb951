#!/usr/bin/env bash
# start:     runs moto server on the host and port of AWS_ENDPOINT_URL unless something
#            already answers there (then it is reused and left alone). It accepts any
#            credentials (`make dev`). Prints "started" or "reused".
# start-iam: the same, but the server enforces IAM (`make test`): after the users of
#            infra/emulator_iam.py are created, every call must be signed by one of their
#            keys and allowed by that user's policy. The keys are written to
#            .local/emulator-iam-<port>.json, where the tests read them. A server already
#            answering is reused only if it enforces IAM and knows the recorded keys; its
#            users then get the policies template.yaml holds now.
# stop:      stops the server only if `start`/`start-iam` started it.
set -euo pipefail
source "$(dirname "$0")/env.sh"
hostport="${AWS_ENDPOINT_URL#*://}"; hostport="${hostport%%/*}"
HOST="${hostport%:*}"; PORT="${hostport##*:}"
PIDFILE="$STATE/moto-$PORT.pid"
IAM_FILE="$STATE/emulator-iam-$PORT.json"

listening() {
  python3 - "$HOST" "$PORT" <<'PY'
import socket, sys
s = socket.socket(); s.settimeout(0.5)
sys.exit(0 if s.connect_ex((sys.argv[1], int(sys.argv[2]))) == 0 else 1)
PY
}

# Starts moto server with the given extra environment and waits until it listens.
launch() {
  bash "$ROOT/infra/venv.sh"
  env "$@" nohup "$VENV/bin/moto_server" -H "$HOST" -p "$PORT" >"$STATE/moto-$PORT.log" 2>&1 &
  echo $! >"$PIDFILE"
  for _ in $(seq 1 100); do
    if listening; then return 0; fi
    sleep 0.1
  done
  echo "moto server did not start; see $STATE/moto-$PORT.log" >&2
  return 1
}

# Waits for the process to exit (moto can take a minute to let go of a large state), and
# kills it after 10 s, so that a following `start` never runs a second one beside it.
stop() {
  [ -f "$PIDFILE" ] || return 0
  local pid; pid="$(cat "$PIDFILE")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    # Gone, or a zombie nobody reaps (it has let go of its port).
    case "$(ps -o stat= -p "$pid" 2>/dev/null)" in
      ""|Z*) rm -f "$PIDFILE"; return 0 ;;
    esac
    sleep 0.1
  done
  echo "moto server $pid still running 10 s after SIGTERM: killing it" >&2
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$PIDFILE"
}

iam() { "$VENV/bin/python" "$ROOT/infra/emulator_iam.py" "$@"; }

case "${1:-}" in
  start)
    if listening; then echo reused; exit 0; fi
    launch
    echo started
    ;;
  start-iam)
    if listening; then
      iam sync "$AWS_ENDPOINT_URL" "$ROOT/template.yaml" "$IAM_FILE" >&2 || {
        echo "something answers at $AWS_ENDPOINT_URL but is not an IAM-enforcing emulator set up by this project: stop it, or point TEST_AWS_ENDPOINT_URL elsewhere" >&2
        exit 1
      }
      echo reused; exit 0
    fi
    rm -f "$IAM_FILE"
    # Three unauthenticated calls: emulator_iam.py spends them on the admin user.
    launch INITIAL_NO_AUTH_ACTION_COUNT=3
    if ! iam setup "$AWS_ENDPOINT_URL" "$ROOT/template.yaml" "$IAM_FILE" >&2; then
      stop
      exit 1
    fi
    echo started
    ;;
  stop)
    stop
    ;;
  *)
    echo "usage: $0 start|start-iam|stop" >&2; exit 2 ;;
esac

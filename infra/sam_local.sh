#!/usr/bin/env bash
# `make sam-local`: the template's own functions, built by `sam build`, served by
# `sam local start-api` (Docker, AWS's Lambda Runtime Interface Emulator, SAM's API
# Gateway emulation) on http://127.0.0.1:${SAM_PORT:-3001}, against the local emulator as
# `make dev` runs it (same bootstrap, same demo entity, fresh keys printed).
#
# On a fresh machine it installs what it needs: docker.io, mmdebstrap and socat (apt), SAM
# CLI (.venv-sam). It starts dockerd if none answers (and stops it at the end only then),
# builds the invoke image once (a minimal Debian made by mmdebstrap: no image registry is
# reachable; SAM adds its Runtime Interface Emulator on top), and builds the functions for
# this machine's architecture in debug (`SAM_BUILD_MODE=debug sam build`, into
# .aws-sam/local; deployments stay arm64 release). Containers are warm (LAZY): only the
# first call of each function starts one. Ctrl-C stops everything it started.
#
# `sam_local.sh smoke` (`make sam-local-smoke`): the same, then infra/sam_local_smoke.py
# walks the lifecycle through it and invokes every function with every sample event, and
# everything is stopped.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
MODE="${1:-serve}"
SAM_PORT="${SAM_PORT:-3001}"
IMAGE=connectors-sam-base:bookworm
BUILD_DIR="$ROOT/.aws-sam/local"
export SAM_CLI_TELEMETRY=0
case "$(uname -m)" in
  x86_64) ARCH=x86_64 ;;
  aarch64 | arm64) ARCH=arm64 ;;
  *) echo "unsupported machine architecture $(uname -m)" >&2; exit 1 ;;
esac

say() { echo "== $*" >&2; }

install_packages() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
  command -v socat >/dev/null || missing+=(socat)
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${missing[@]}" >"$STATE/apt.log" 2>&1 ||
    { apt-get update -q >>"$STATE/apt.log" 2>&1 && apt-get install -y -q "${missing[@]}" >>"$STATE/apt.log" 2>&1; } ||
    { echo "apt-get install ${missing[*]} failed; see $STATE/apt.log" >&2; exit 1; }
}

DOCKERD_PID=
start_docker() {
  docker info >/dev/null 2>&1 && return 0
  say "starting dockerd (log: $STATE/dockerd.log)"
  dockerd >"$STATE/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  for _ in $(seq 1 100); do
    docker info >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "dockerd did not come up; see $STATE/dockerd.log" >&2
  exit 1
}

stop_docker() {
  [ -n "$DOCKERD_PID" ] || return 0
  kill "$DOCKERD_PID" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$DOCKERD_PID" 2>/dev/null || return 0; sleep 0.1; done
  echo "dockerd $DOCKERD_PID still running 10 s after SIGTERM: killing it" >&2
  kill -9 "$DOCKERD_PID" 2>/dev/null || true
}

invoke_image() {
  docker image inspect "$IMAGE" >/dev/null 2>&1 && return 0
  say "building the invoke image $IMAGE (mmdebstrap bookworm, ca-certificates)"
  local tar="$STATE/sam-base.tar"
  mmdebstrap --quiet --variant=essential --include=ca-certificates bookworm "$tar"
  docker import "$tar" "$IMAGE" >/dev/null
  rm -f "$tar"
}

# cargo-lambda compiles with the machine's own toolchain (no zig: nothing is cross-built).
# --no-cached: SAM's cache hashes the whole CodeUri (the repo, target/ included), which
# took 12 minutes here; cargo's own incremental build is the cache that matters.
build_functions() {
  say "sam build ($ARCH, debug) into ${BUILD_DIR#"$ROOT"/}"
  CARGO_LAMBDA_COMPILER=cargo SAM_BUILD_MODE=debug sam build --no-cached \
    --parameter-overrides "Stage=dev Architecture=$ARCH" --build-dir "$BUILD_DIR" >"$STATE/sam-build.log" 2>&1 ||
    { tail -n 40 "$STATE/sam-build.log" >&2; exit 1; }
}

# The containers sit on Docker's bridge network (SAM's `--docker-network host` does not
# give them the host's loopback), and the emulator listens on loopback only: socat relays
# the bridge's gateway address to it, so the functions reach the same emulator the host's
# tools use, and nothing listens on any other interface.
FORWARD_PID=
forward_emulator() {
  local gateway port="${AWS_ENDPOINT_URL##*:}"
  gateway=$(ip -4 -o addr show docker0 | awk '{print $4}' | cut -d/ -f1)
  [ -n "$gateway" ] || { echo "no IPv4 address on docker0" >&2; exit 1; }
  socat "TCP-LISTEN:$port,bind=$gateway,fork,reuseaddr" "TCP:127.0.0.1:$port" &
  FORWARD_PID=$!
  FUNCTION_ENDPOINT="http://$gateway:$port"
}

# env.json with AWS_ENDPOINT_URL set to the emulator as the containers reach it.
env_file() {
  python3 - "$ROOT/env.json" "$FUNCTION_ENDPOINT" >"$STATE/sam-env.json" <<'PY'
import json, sys
env = json.load(open(sys.argv[1]))
env["Parameters"]["AWS_ENDPOINT_URL"] = sys.argv[2]
json.dump(env, sys.stdout, indent=2)
PY
}

SAM_PID=
started=
cleanup() {
  if [ -n "$SAM_PID" ]; then
    # SIGINT is how SAM expects to be stopped: it then removes its warm containers.
    kill -INT "$SAM_PID" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$SAM_PID" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$SAM_PID" 2>/dev/null || true
    # Whatever container SAM left behind (it was killed, or `sam local invoke` was).
    docker ps -q --filter "ancestor=${IMAGE%%:*}:rapid-$ARCH" | xargs -r docker rm -f >/dev/null 2>&1 || true
  fi
  if [ -n "$FORWARD_PID" ]; then kill "$FORWARD_PID" 2>/dev/null || true; fi
  if [ "$started" = started ]; then bash infra/emulator.sh stop || true; fi
  stop_docker
}
trap cleanup EXIT
trap 'exit 130' INT TERM

install_packages
bash infra/tools.sh
export PATH="$ROOT/.venv-sam/bin:$PATH"
start_docker
invoke_image
build_functions
cargo build -q --bin connectors-admin
cargo_target_dir
started=$(bash infra/emulator.sh start)
forward_emulator
env_file
source "$ROOT/infra/demo.sh"
demo_banner "http://127.0.0.1:$SAM_PORT" "$started"

SAM_ARGS=(--parameter-overrides "Stage=dev Architecture=$ARCH LocalEndpointUrl=$FUNCTION_ENDPOINT"
  --env-vars "$STATE/sam-env.json" --invoke-image "$IMAGE" --skip-pull-image)
export SAM_ARGS_FILE="$STATE/sam-args"
printf '%s\n' "${SAM_ARGS[@]}" >"$SAM_ARGS_FILE"
# Job control on: SAM runs in its own process group and keeps SIGINT (a background job
# of a script would ignore it), which is what stops it cleanly.
set -m
sam local start-api -t "$BUILD_DIR/template.yaml" --host 127.0.0.1 --port "$SAM_PORT" \
  --warm-containers LAZY "${SAM_ARGS[@]}" &
SAM_PID=$!
set +m
if [ "$MODE" = smoke ]; then
  "$ROOT/.venv-sam/bin/python" infra/sam_local_smoke.py "http://127.0.0.1:$SAM_PORT" "$BUILD_DIR/template.yaml" \
    "$TARGET_DIR/debug/connectors-admin"
else
  wait "$SAM_PID"
fi

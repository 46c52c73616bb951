#!/usr/bin/env bash
# `make reliability`: hostile-input fuzzing of the dev server against openapi.yaml.
#
# schemathesis (pinned, installed into .venv next to moto) generates positive and negative
# requests for every operation and checks each response against the document: no 5xx, a
# documented status, content type, headers and body schema, negative data rejected, auth not
# ignored, 405 with Allow. Four runs: a live key with every scope (the big one), a test key,
# no Authorization header, a garbage one. Then a hand-written set of hostile requests the
# generator does not produce (oversized and deeply nested bodies, wrong media types, broken
# JSON/UTF-8, odd paths/methods/queries, revoked and under-scoped keys, concurrent bursts)
# goes through the same checks. Stored credential values are canaries: none may come back.
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

SCHEMATHESIS_VERSION=4.32.5
EXAMPLES="${RELIABILITY_EXAMPLES:-150}"
OUT="$STATE/reliability"
PY="$VENV/bin/python"
ST="$VENV/bin/schemathesis"

# Resources of this run only.
RUN_ID="fz$(date +%s)$$"
export CONNECTORS_TABLE="connectors-$RUN_ID"
export EVENT_BUS_NAME="integrations-$RUN_ID"
export SECRET_PREFIX="reliability/$RUN_ID/"
export RUST_LOG="${RUST_LOG:-warn}"

rm -rf "$OUT"
mkdir -p "$OUT/hooks" "$OUT/work"
started_at=$(date +%s)

# ---- tools ----------------------------------------------------------------------------------
bash infra/venv.sh
if ! "$PY" -c "import schemathesis, sys; sys.exit(schemathesis.__version__ != '$SCHEMATHESIS_VERSION')" 2>/dev/null; then
  echo "installing schemathesis==$SCHEMATHESIS_VERSION into $VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
cargo build -q --bin connectors-admin --bin connectors-dev

# ---- stack ----------------------------------------------------------------------------------
started=$(bash infra/emulator.sh start)
DEV_PID=
cleanup() {
  local rc=$?
  if [ -n "$DEV_PID" ]; then kill "$DEV_PID" 2>/dev/null || true; wait "$DEV_PID" 2>/dev/null || true; fi
  if [ "$started" = started ]; then
    bash infra/emulator.sh stop
  else
    # A reused emulator keeps running: remove what this run created in it.
    "$PY" - <<'PY' >/dev/null 2>&1 || true
import os, boto3
kw = dict(endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ["AWS_REGION"])
boto3.client("dynamodb", **kw).delete_table(TableName=os.environ["CONNECTORS_TABLE"])
events = boto3.client("events", **kw)
bus = os.environ["EVENT_BUS_NAME"]
for rule in events.list_rules(EventBusName=bus).get("Rules", []):
    targets = events.list_targets_by_rule(Rule=rule["Name"], EventBusName=bus).get("Targets", [])
    if targets:
        events.remove_targets(Rule=rule["Name"], EventBusName=bus, Ids=[t["Id"] for t in targets])
    events.delete_rule(Name=rule["Name"], EventBusName=bus)
events.delete_event_bus(Name=bus)
sm = boto3.client("secretsmanager", **kw)
for page in sm.get_paginator("list_secrets").paginate(IncludePlannedDeletion=True,
        Filters=[{"Key": "name", "Values": [os.environ["SECRET_PREFIX"]]}]):
    for s in page["SecretList"]:
        sm.delete_secret(SecretId=s["ARN"], ForceDeleteWithoutRecovery=True)
PY
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

admin() { "$ROOT/target/debug/connectors-admin" "$@"; }
new_uuid() { "$PY" -c 'import uuid; print(uuid.uuid4())'; }
ALL=(--scope integrations:read --scope integrations:write --scope integrations:credentials --scope integrations:purge)

admin bootstrap >/dev/null
# A fresh entity per run (a row one run breaks must not fail the next), each with a live and
# a test key holding all four scopes; the hand-written run also gets narrower keys, a revoked
# one, another tenant and an entity of its own for bodies that might break rows.
declare -A KEY
for set in main test-key hostile; do
  entity=$(new_uuid)
  KEY[$set.live]=$(admin keys create --entity "$entity" "${ALL[@]}" --live | tail -n 1)
  KEY[$set.test]=$(admin keys create --entity "$entity" "${ALL[@]}" | tail -n 1)
done
hostile_entity=$entity
KEY[hostile.read_only]=$(admin keys create --entity "$hostile_entity" --scope integrations:read --live | tail -n 1)
KEY[hostile.write_only]=$(admin keys create --entity "$hostile_entity" --scope integrations:read --scope integrations:write --live | tail -n 1)
KEY[hostile.revoked]=$(admin keys create --entity "$hostile_entity" "${ALL[@]}" --live | tail -n 1)
revoked_code=${KEY[hostile.revoked]#ark_live_ent_}; admin keys revoke "key_${revoked_code%%_*}" >/dev/null
KEY[other.live]=$(admin keys create --entity "$(new_uuid)" "${ALL[@]}" --live | tail -n 1)
KEY[poison.live]=$(admin keys create --entity "$(new_uuid)" "${ALL[@]}" --live | tail -n 1)

PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
PORT="$PORT" "$ROOT/target/debug/connectors-dev" >"$OUT/dev-server.log" 2>&1 &
DEV_PID=$!
for _ in $(seq 1 100); do
  code=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/v1/integrations" 2>/dev/null || true)
  [ "$code" = 401 ] && break
  kill -0 "$DEV_PID" 2>/dev/null || { echo "connectors-dev exited; see $OUT/dev-server.log" >&2; exit 1; }
  sleep 0.2
done
[ "$code" = 401 ] || { echo "connectors-dev did not answer on $BASE" >&2; exit 1; }

cat <<MSG
  emulator     $AWS_ENDPOINT_URL ($started)
  table        $CONNECTORS_TABLE (bus $EVENT_BUS_NAME, secrets $SECRET_PREFIX)
  API          $BASE/v1/integrations
  schemathesis $SCHEMATHESIS_VERSION, $EXAMPLES fuzzing examples per operation (main run)
MSG

KEYS="$OUT/work/keys.json"
for k in "${!KEY[@]}"; do echo "$k ${KEY[$k]}"; done | "$PY" -c '
import json, sys, uuid
keys = {"canaries": ["canary-" + uuid.uuid4().hex for _ in range(8)]}
for line in sys.stdin:
    name, key = line.split()
    group, role = name.split(".")
    keys.setdefault(group, {})[role] = key
json.dump(keys, open(sys.argv[1], "w"))' "$KEYS"

# ---- seed: rows for GET/PATCH/credentials/restore/DELETE to find (re-run before each run) --
seed() {  # the key set whose entity gets the rows
  "$PY" - "$BASE" "$KEYS" "$1" <<'PY'
import json, os, sys
import requests
base, path, group = sys.argv[1:4]
all_keys = json.load(open(path))
keys = all_keys[group]
c = all_keys["canaries"]
api = base + "/v1/integrations/"

def call(key, method, ref, body=None):
    r = requests.request(method, api + ref, json=body, timeout=30,
                         headers={"Authorization": f"Bearer {keys[key]}"})
    if r.status_code >= 500:  # a server error while seeding is a finding too
        with open(os.path.join(os.path.dirname(path), "..", "seed-errors.txt"), "a") as f:
            f.write(json.dumps({"method": method, "ref": ref, "status": r.status_code, "body": r.text[:600]}) + "\n")
    return r

def connect(key, ctype, body=None):
    r = call(key, "POST", ctype, body or {})
    if r.status_code == 409:
        call(key, "POST", ctype + "/restore")
    r = call(key, "GET", ctype)
    return r.json()["data"]["id"] if r.status_code == 200 else None

live = {  # type -> (connect body, credentials body or None, disconnect afterwards)
    "stripe": ({"display_name": "Payments", "config": {"statement_descriptor": "ACME"}},
               {"credentials": {"secret_key": c[0], "publishable_key": "pk_test_1"}, "webhook_secret": c[1]}, False),
    "avatax": ({"mode": "sandbox", "ship_from_zip": "62701"},
               {"credentials": {"account_id": "1", "license_key": c[2]}}, False),
    "ups": ({"ship_from_name": "ACME", "ship_from_city": "Springfield"},
            {"credentials": {"client_id": "ups-id", "client_secret": c[3]}}, True),
    "shippo": ({}, {"credentials": {"api_token": c[4]}}, True),
    "shopify": ({"config": {"shop": "acme"}}, None, False),
    "google": ({}, None, False),
    "wwex": ({}, {"credentials": {"client_id": "w", "client_secret": c[5]}, "webhook_secret": c[6]}, True),
    "usps": ({"mode": "sandbox"}, None, True),
}
test = {
    "postmark": ({}, {"credentials": {"server_token": c[7]}}, False),
    "printnode": ({"config": {"printer": 1}}, None, True),
    "mapquest": ({}, None, False),
}
for key, rows in (("live", live), ("test", test)):
    for ctype, (body, creds, disconnect) in rows.items():
        row_id = connect(key, ctype, body)
        if creds:
            call(key, "PUT", ctype + "/credentials", creds)
        if disconnect:
            call(key, "DELETE", ctype)
        if key == "live" and ctype == "stripe":
            keys["live_row_id"] = row_id
if group == "hostile":
    keys["other"] = all_keys["other"]["live"]
    keys["other_entity_row_id"] = connect("other", "stripe")
json.dump(all_keys, open(path, "w"))
PY
}

# Unique Idempotency-Key values: schemathesis' coverage phase reuses the same few values
# ("0", "000…") across different requests, so without this most write requests stop at
# 409 idempotency_key_mismatch and never reach validation. Two of three plainly valid keys
# get a unique suffix (still valid); invalid ones and every third valid one go out as
# generated, so replay and mismatch stay exercised.
cat >"$OUT/hooks/reliability_hooks.py" <<'PY'
import itertools
import re
import uuid

import schemathesis

_counter = itertools.count()
_run = uuid.uuid4().hex[:8]
_PLAIN = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")


@schemathesis.hook
def before_call(context, case, kwargs):
    headers = case.headers
    if not headers:
        return
    for name in list(headers):
        if name.lower() != "idempotency-key":
            continue
        value = headers[name]
        n = next(_counter)
        if isinstance(value, str) and _PLAIN.match(value) and n % 3:
            headers[name] = f"{value}-{_run}{n:x}"
PY

# ---- schemathesis runs ----------------------------------------------------------------------
# The key goes in through schemathesis' auth config for the `bearerAuth` scheme (not a fixed
# -H header), so the cases it generates without or with a broken Authorization really go
# out that way (missing_required_header, ignored_auth).
# A schema-violating body over 64 KiB is rightly a 413 (openapi.yaml): schemathesis' default
# list of rejection statuses for negative data lacks it, so it is added (nothing else is).
rejection='[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]'
printf '%s\n\n[auth.openapi.bearerAuth]\nbearer = "${FUZZ_KEY}"\n' "$rejection" >"$OUT/work/auth.toml"
printf '%s\n' "$rejection" >"$OUT/work/no-auth.toml"
# Every check except positive_data_acceptance: the document cannot express the catalog's
# per-type credential keys, cursors that must name an existing row or the no-control-
# characters rule, so schema-valid requests are rightly refused there with 400/422.
declare -A RC
run_st() {  # name, key (empty: none), then schemathesis arguments
  local name=$1 key=$2; shift 2
  local rc=0 config="$OUT/work/auth.toml"
  [ -n "$key" ] || config="$OUT/work/no-auth.toml"
  echo
  echo "== schemathesis: $name"
  (cd "$OUT/work" && FUZZ_KEY="$key" PYTHONPATH="$OUT/hooks" SCHEMATHESIS_HOOKS=reliability_hooks \
    "$ST" --config-file "$config" run "$ROOT/openapi.yaml" --url "$BASE" \
      --checks all --exclude-checks positive_data_acceptance \
      --mode all --continue-on-failure --request-timeout 30 --workers 1 \
      --generation-database none --output-sanitize false --no-color \
      ${RELIABILITY_SEED:+--seed "$RELIABILITY_SEED"} \
      --report junit,ndjson,json \
      --report-junit-path "$OUT/junit-$name.xml" \
      --report-ndjson-path "$OUT/$name.ndjson" \
      --report-json-path "$OUT/$name.json" \
      "$@") >"$OUT/$name.log" 2>&1 || rc=$?
  RC[$name]=$rc
  grep -E '^ *(Test cases:|[0-9]+ generated|Seed:|=+ .* in [0-9.]+s =+$)' "$OUT/$name.log" | sed 's/^ */  /' || true
}

seed main
run_st main "${KEY[main.live]}" --max-examples "$EXAMPLES"
seed test-key
run_st test-key "${KEY[test-key.test]}" --max-examples $((EXAMPLES / 3 > 0 ? EXAMPLES / 3 : 1))
run_st no-auth "" --phases fuzzing --max-examples 15
run_st garbage-auth "ark_live_ent_garbage0000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" --phases fuzzing --max-examples 15

# ---- hand-written hostile requests ---------------------------------------------------------
seed hostile
echo
echo "== hostile requests"
hostile_rc=0
EMULATOR_LOG="$STATE/moto-${AWS_ENDPOINT_URL##*:}.log" \
  "$PY" - "$ROOT/openapi.yaml" "$BASE" "$KEYS" "$OUT/hostile.ndjson" <<'PY' >"$OUT/hostile.log" 2>&1 || hostile_rc=$?
import concurrent.futures
import os
import json
import re
import sys
import uuid

import jsonschema
import requests
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

SPEC, BASE, KEYS, OUT = sys.argv[1:5]
all_keys = json.load(open(KEYS))
keys = {**all_keys["hostile"], "poison": all_keys["poison"]["live"], "canaries": all_keys["canaries"]}
schema = schemathesis.openapi.from_path(SPEC)
ERROR = jsonschema.Draft202012Validator(schema.raw_schema["components"]["schemas"]["Error"])
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
REQ_ID = re.compile(r"^req_[0-9a-f]{32}$")
session = requests.Session()
out = open(OUT, "w")
results = []


def template_of(path):
    """The documented path template a request path falls under, with its parameters."""
    segs = path.split("?", 1)[0].split("/")
    if segs[:3] != ["", "v1", "integrations"]:
        return None, {}
    if len(segs) == 3:
        return "/v1/integrations", {}
    name = requests.utils.unquote(segs[3])
    if len(segs) == 4 and name:
        return "/v1/integrations/{connector}", {"connector": name}
    if len(segs) == 5 and name and segs[4] in ("credentials", "restore"):
        return "/v1/integrations/{connector_type}/" + segs[4], {"connector_type": name}
    return None, {}


def auth(name):
    return {"Authorization": f"Bearer {keys[name]}"}


def jb(obj):
    return json.dumps(obj).encode()


def send(group, method, path, *, headers=None, body=None, expect=None, note=""):
    """Sends one request with the path exactly as written and checks the response."""
    headers = dict(headers or {})
    try:
        prepped = session.prepare_request(requests.Request(method, BASE + path, headers=headers, data=body))
    except ValueError as exc:  # a header value the client refuses to send: nothing to test
        print(f"skipped {group}/{note}: {exc}")
        return None
    prepped.url = BASE + path
    try:
        resp = session.send(prepped, timeout=30, allow_redirects=False)
    except requests.RequestException as exc:
        record(group, method, path, headers, body, None, [("transport_error", repr(exc)[:300])], note)
        return None
    record(group, method, path, headers, body, resp, validate(method, path, headers, resp, expect), note)
    return resp


def validate(method, path, headers, resp, expect):
    failures = []
    tpl, params = template_of(path)
    op = None
    if tpl is not None:
        try:
            op = schema[tpl][method]
        except LookupError:
            op = None
    if op is not None:
        case = op.Case(path_parameters=params, headers=headers)
        for check in CHECKS:
            try:
                case.validate_response(resp, checks=[check])
            except (Exception, BaseExceptionGroup) as exc:  # a Failure or a FailureGroup
                inner = exc.exceptions if isinstance(exc, BaseExceptionGroup) else [exc]
                failures.append((check.__name__, "; ".join(getattr(e, "title", None) or str(e) for e in inner)[:300]))
    # What every response of the API must hold, documented operation or not.
    rid = resp.headers.get("x-request-id", "")
    if not REQ_ID.match(rid):
        failures.append(("response_headers_conformance", f"x-request-id is {rid!r}"))
    if resp.headers.get("cache-control") != "no-store":
        failures.append(("response_headers_conformance", f"cache-control is {resp.headers.get('cache-control')!r}"))
    if resp.status_code >= 400 and method != "HEAD":  # a HEAD answer never has a body
        try:
            envelope = resp.json()
        except ValueError:
            failures.append(("response_schema_conformance", "error body is not JSON"))
        else:
            err = next(iter(ERROR.iter_errors(envelope)), None)
            if err is not None:
                failures.append(("response_schema_conformance", f"not an Error envelope: {err.message[:200]}"))
            elif envelope.get("request_id") != rid:
                failures.append(("response_schema_conformance", "request_id differs from x-request-id"))
    if resp.status_code == 405 and not resp.headers.get("allow"):
        failures.append(("response_headers_conformance", "405 without Allow"))
    if resp.status_code >= 500 and not any(c == "not_a_server_error" for c, _ in failures):
        failures.append(("not_a_server_error", f"server error {resp.status_code}"))
    seen = resp.text + json.dumps(dict(resp.headers))
    if any(canary in seen for canary in keys["canaries"]):
        failures.append(("secret_canary", "a stored credential value is in the response"))
    if expect is not None and resp.status_code not in expect:
        failures.append(("expected_status", f"expected {sorted(expect)}, got {resp.status_code}"))
    return failures


def clip(value, n=300):
    if isinstance(value, (bytes, bytearray)):
        text = bytes(value[:n]).decode("utf-8", "replace")
        return text + (f"…({len(value)} bytes)" if len(value) > n else "")
    if isinstance(value, str) and len(value) > n:
        return value[:n] + f"…({len(value)} chars)"
    return value


def record(group, method, path, headers, body, resp, failures, note):
    tpl = template_of(path)[0]
    if tpl is None:
        label = f"{method} (no documented path)"
    elif method.lower() in schema.raw_schema["paths"][tpl]:
        label = f"{method} {tpl}"
    else:
        label = f"{method} {tpl} (method not documented)"
    entry = {
        "group": group, "note": note,
        "label": label,
        "method": method, "path": clip(path),
        "request_headers": {k: clip(v if isinstance(v, str) else v.decode("latin-1"), 120) for k, v in headers.items()},
        "request_body": clip(body) if body is not None else None,
        "status": resp.status_code if resp is not None else None,
        "response_headers": dict(resp.headers) if resp is not None else None,
        "response_body": resp.text[:600] if resp is not None else None,
        "failures": [{"check": c, "message": m} for c, m in failures],
    }
    results.append(entry)
    out.write(json.dumps(entry) + "\n")
    out.flush()


J = {"Content-Type": "application/json"}
A = auth("live")
L = {**A, **J}


def padded(total):
    """A JSON object of exactly `total` bytes."""
    skeleton = len(jb({"config": {"pad": ""}}))
    return jb({"config": {"pad": "a" * (total - skeleton)}})


def nested(depth):
    return b'{"config":' + b'{"a":' * depth + b"1" + b"}" * depth + b"}"


# -- oversized bodies (the cap is 64 KiB) --
send("oversized", "DELETE", "/v1/integrations/shopify?permanent=true", headers=A, expect={204, 404})
send("oversized", "POST", "/v1/integrations/shopify", headers=L, body=padded(65536), expect={201}, note="exactly 64 KiB")
send("oversized", "PATCH", "/v1/integrations/shopify", headers=L, body=padded(65537), expect={413}, note="64 KiB + 1 byte")
send("oversized", "PATCH", "/v1/integrations/shopify", headers=L, body=padded(1 << 20), expect={413}, note="1 MiB")
send("oversized", "PUT", "/v1/integrations/shopify/credentials", headers=L, body=b"{" + b" " * (1 << 20) + b"}",
     expect={413}, note="1 MiB of whitespace")
send("oversized", "POST", "/v1/integrations/ebay", headers=L, body=b"[" * 70000, expect={413}, note="70 kB of '['")
# The 64 KiB cap holds on every route, including those that read no body.
send("oversized", "POST", "/v1/integrations/shopify/restore", headers=L, body=padded(65537), expect={413},
     note="restore with a 64 KiB + 1 body")
send("oversized", "GET", "/v1/integrations", headers=L, body=b"x" * 70000, expect={413},
     note="GET with a 70 kB body")
send("oversized", "PUT", "/v1/integrations/shopify/credentials", headers=L,
     body=jb({"credentials": {"access_token": "x" * 5000}}), expect={400, 422}, note="credential value of 5000 chars")
send("oversized", "PATCH", "/v1/integrations/shopify", headers=L, body=jb({"display_name": "d" * 257}),
     expect={400, 422}, note="display_name of 257 chars")
send("oversized", "PATCH", "/v1/integrations/shopify", headers=L, body=jb({"config": {f"k{i}": i for i in range(4000)}}),
     expect={200}, note="config with 4000 keys (under 64 KiB)")

# -- media types --
for ct, exp in [("text/plain", {415}), ("application/xml", {415}), ("multipart/form-data; boundary=x", {415}),
                ("application/x-www-form-urlencoded", {415}), ("application/jsonx", {415}), ("*/*", {415}),
                ("text/json", {415}), ("", {415}), ("application/json; charset=utf-8", {200}),
                ("application/merge-patch+json", {200}), ("application/vnd.api+json", {200}),
                ("APPLICATION/JSON", {200, 415}), ("application/json, text/plain", {200, 415})]:
    send("media_type", "PATCH", "/v1/integrations/shopify", headers={**A, "Content-Type": ct},
         body=b'{"display_name":"Shop"}', expect=exp, note=f"Content-Type {ct!r}")
send("media_type", "POST", "/v1/integrations/usps", headers={**A, "Content-Type": "text/plain"}, body=b"display_name=x",
     expect={415})
send("media_type", "PUT", "/v1/integrations/shopify/credentials",
     headers={**A, "Content-Type": "application/x-www-form-urlencoded"}, body=b"credentials[access_token]=x", expect={415})
send("media_type", "POST", "/v1/integrations/usps", headers=A, body=b'{"display_name":"x"}', expect={415},
     note="JSON body without Content-Type")

# -- broken and odd JSON --
for body, exp, note in [
    (b"{", {400}, "truncated"), (b"[]", {400, 422}, "array"), (b"null", {200, 400, 422}, "null"),
    (b'"str"', {400, 422}, "string"), (b"123", {400, 422}, "number"), (b"{}x", {400}, "trailing garbage"),
    (b'{"display_name":"a","display_name":"b"}', {400}, "duplicate key"),
    (b'{"config":{"a":1,"\\u0061":2}}', {400}, "duplicate key in config, one escaped"),
    (b"\xef\xbb\xbf{}", {200, 400}, "UTF-8 BOM"), (b'{"display_name":"\xff\xfe"}', {400}, "invalid UTF-8"),
    (b'{"display_name":"\\ud800"}', {400}, "lone surrogate escape"), (b'{"display_name":"a\x00b"}', {400}, "raw NUL"),
    (b'{"display_name":"a\\u0000b"}', {400, 422}, "escaped NUL in display_name"),
    (b'{"config":{"n":1e999999}}', {200, 400}, "number overflow"),
    (b'{"config":{"s":"","l":[],"m":{},"z":null,"nul":"\\u0000"}}', {200, 400, 422}, "empty and NUL values"),
    (b'{"config":' + b"[" * 200 + b"]" * 200 + b"}", {400}, "array nested 200 deep"),
    (b'{"config":{"API_KEY":"x"}}', {422}, "secret-looking config key, upper case"),
    (b'{"config":{"a":[{"b":{"Access_Token":"x"}}]}}', {422}, "secret name inside an array"),
    (b'{"entity_id":"00000000-0000-0000-0000-000000000000"}', {422}, "entity_id"),
    (b'{"is_active":"false"}', {400, 422}, "is_active as a string"),
    (b'{"mode":"LIVE"}', {400, 422}, "mode in upper case"),
    (b'{"bank_account_id":"not-a-uuid"}', {400, 422}, "bad uuid"),
    (b'{"bank_account_id":"3C90C3CC0D444B5088888DD25736052A"}', {200, 400, 422}, "uuid without hyphens"),
    (b'{"display_name":"   "}', {400, 422}, "blank display_name"),
    (b'{"display_name":"a\\nb"}', {400, 422}, "control character in display_name"),
    (b'{"ship_from_zip":""}', {400, 422}, "empty ship_from_zip"),
    (b'{"display_name":"\\u202egnp.exe"}', {200, 400, 422}, "bidi override"),
]:
    send("json", "PATCH", "/v1/integrations/shopify", headers=L, body=body, expect=exp, note=note)

# -- bodies the row store might not take back: deep nesting (DECISIONS.md: 32 levels with the
#    body as level 1, deeper is a 400) and odd map keys. On an entity of their own, with a
#    read-back after each, so a row that cannot be read again shows up here and spoils nothing
#    else. --
P = {**auth("poison"), **J}
for depth, ctype, exp in [(31, "fedex", {201}), (32, "amazon", {400}), (70, "openai", {400})]:
    send("store_roundtrip", "POST", f"/v1/integrations/{ctype}", headers=P, body=nested(depth), expect=exp,
         note=f"connect, body nested {depth + 1} levels")
    send("store_roundtrip", "GET", f"/v1/integrations/{ctype}", headers=auth("poison"), expect={200, 404},
         note=f"read back (body nested {depth + 1} levels)")
for ctype, cfg in [("shippo", b'{"n":1e126}'), ("printnode", b'{"n":-1.7976931348623157e308}'),
                   ("postmark", b'{"n":1e-131}'), ("shopify", b'{"n":-0.0,"m":1e-400}'),
                   ("stripe", b'{"n":123456789012345678901234567890123456789012345}'), ("plaid", b'{"":1}'),
                   ("google", b'{"a":{"":{"b":1}}}'), ("usps", b'{" ":1,"\\u0000":2}'), ("ebay", b'{"a":[{"":1}]}')]:
    send("store_roundtrip", "POST", f"/v1/integrations/{ctype}", headers=P, body=b'{"config":' + cfg + b"}",
         expect={201, 400, 422}, note=f"connect with config {cfg.decode()}")
    send("store_roundtrip", "GET", f"/v1/integrations/{ctype}", headers=auth("poison"), expect={200, 404},
         note=f"read back (config {cfg.decode()})")
send("store_roundtrip", "POST", "/v1/integrations/mapquest", headers=P, body=b"{}", expect={201, 409})
send("store_roundtrip", "PATCH", "/v1/integrations/mapquest", headers=P, body=b'{"config":{"":1}}',
     expect={200, 400, 422}, note="edit an existing row's config to {\"\": 1}")
send("store_roundtrip", "GET", "/v1/integrations/mapquest", headers=auth("poison"), expect={200},
     note="read back the edited row")
send("store_roundtrip", "GET", "/v1/integrations?limit=100", headers=auth("poison"), expect={200},
     note="list the entity")
send("store_roundtrip", "DELETE", "/v1/integrations/mapquest?permanent=true", headers=auth("poison"), expect={204},
     note="purge the edited row")

# -- paths, methods, query strings --
for path, exp in [
    ("/v1/integrations/STRIPE", {400, 404}), ("/v1/integrations/stripe%00", {400, 404}),
    ("/v1/integrations/%ff", {400, 404}), ("/v1/integrations/%2e%2e", {400, 404}),
    ("/v1/integrations/..%2f..%2fetc%2fpasswd", {400, 404}), ("/v1/integrations/stripe%2fcredentials", {400, 404}),
    ("/v1/integrations/", {200, 400, 404}), ("/v1/integrations//stripe", {400, 404}),
    ("/v1/integrations/stripe/", {200, 400, 404}), ("/v1/integrations/" + "a" * 8000, {400, 404, 414}),
    ("/v1/integrations/" + str(uuid.uuid4()).upper(), {400, 404}), ("/v1/integrations/" + uuid.uuid4().hex, {400, 404}),
    ("/v1/integrations/%20stripe", {400, 404}), ("/v1/integrations/stripe/unknown", {404}),
    ("/v1/integrations/stripe/credentials/x", {404}), ("/v1/Integrations", {404}), ("/v2/integrations", {404}),
    ("/", {404}), ("/v1", {404}), ("/v1/integrations.json", {400, 404}),
]:
    send("paths", "GET", path, headers=A, expect=exp)
for method, path, exp in [
    ("PUT", "/v1/integrations/stripe", {405}), ("GET", "/v1/integrations/stripe/credentials", {405}),
    ("DELETE", "/v1/integrations/stripe/restore", {405}), ("POST", "/v1/integrations", {405}),
    ("DELETE", "/v1/integrations", {405}), ("PATCH", "/v1/integrations", {405}),
    ("OPTIONS", "/v1/integrations", {200, 204, 405}), ("HEAD", "/v1/integrations", {200, 405}),
    ("TRACE", "/v1/integrations/stripe", {405}), ("FOO", "/v1/integrations/stripe", {400, 405}),
]:
    send("methods", method, path, headers=A, expect=exp)
for q, exp in [
    ("limit=0", {400}), ("limit=101", {400}), ("limit=-1", {400}), ("limit=1e2", {400}),
    ("limit=99999999999999999999", {400}), ("limit=1&limit=2", {400}), ("limit=", {400}), ("limit=%20", {400}),
    ("is_active=TRUE", {200, 400}), ("is_active=1", {400}), ("mode=LIVE", {400}), ("starting_after=x", {400}),
    (f"starting_after={uuid.uuid4()}&ending_before={uuid.uuid4()}", {400}), ("%zz=1", {400}), ("limit=%ff", {400}),
    ("unknown=1", {400}), ("limit=10&", {200, 400}), ("&&&", {200, 400}), ("limit=5;is_active=true", {400}),
    ("limit[]=5", {400}), ("=", {200, 400}), ("mode", {400}), ("is_active=true&mode=sandbox&limit=100", {200}),
    (f"starting_after={keys['live_row_id']}&limit=1", {200}), (f"ending_before={keys['live_row_id']}", {200}),
]:
    send("query", "GET", "/v1/integrations?" + q, headers=A, expect=exp)
for q, exp in [("permanent=yes", {400}), ("permanent=TRUE", {200, 204, 400, 404}),
               ("permanent=true&permanent=false", {400}), ("permanent=", {400})]:
    send("query", "DELETE", "/v1/integrations/google?" + q, headers=A, expect=exp)

# -- Idempotency-Key --
idk = "fuzz-" + uuid.uuid4().hex
send("idempotency", "DELETE", "/v1/integrations/fedex?permanent=true", headers=A, expect={204, 404})
send("idempotency", "POST", "/v1/integrations/fedex", headers={**L, "Idempotency-Key": idk}, body=b"{}", expect={201})
r = send("idempotency", "POST", "/v1/integrations/fedex", headers={**L, "Idempotency-Key": idk}, body=b"{}",
         expect={201}, note="replay")
if r is not None and r.headers.get("idempotent-replayed") != "true":
    results[-1]["failures"].append({"check": "expected_status", "message": "replay without idempotent-replayed: true"})
send("idempotency", "POST", "/v1/integrations/fedex", headers={**L, "Idempotency-Key": idk},
     body=b'{"display_name":"x"}', expect={409}, note="same key, another body")
send("idempotency", "PATCH", "/v1/integrations/fedex", headers={**L, "Idempotency-Key": idk}, body=b"{}",
     expect={409}, note="same key, another operation")
for value, exp in [("k" * 256, {400}), ("k" * 255, {200}), ("", {400}),
                   ("é".encode(), {400}), ("a\tb", {200, 400})]:
    send("idempotency", "PATCH", "/v1/integrations/fedex", headers={**L, "Idempotency-Key": value},
         body=b'{"seller_id":"s1"}', expect=exp, note=f"Idempotency-Key {clip(value, 12)!r}")

# -- authentication, scopes, test keys, tenants --
live = keys["live"]
for value, note in [
    (None, "no Authorization"), ("", "empty"), ("Bearer", "scheme only"), ("Bearer ", "scheme and a space"),
    (f"Basic {live}", "Basic scheme"), (f"Token {live}", "Token scheme"), (f"Bearer {live}x", "key plus a character"),
    (f"Bearer {live[:-1]}", "key minus a character"), ("Bearer ark_live_ent_", "prefix only"),
    ("Bearer ark_test_ent_aaaaaaaaaaaa_" + "A" * 32, "well-formed, unknown"), ("Bearer " + "A" * 8000, "8 kB token"),
    (f"Bearer {live},Bearer {live}", "two credentials in one header"),
    ("Bearer \xff\xfe\xfd".encode("latin-1"), "latin-1 bytes"), (f"Bearer {keys['revoked']}", "revoked key"),
    ("Bearer ' OR '1'='1", "injection-looking"), ("Bearer ../../etc/passwd", "path-looking"),
]:
    h = {} if value is None else {"Authorization": value}
    for method, path, body in [("GET", "/v1/integrations", None), ("POST", "/v1/integrations/ups", b"{}"),
                               ("DELETE", "/v1/integrations/ups?permanent=true", None)]:
        send("auth", method, path, headers={**h, **(J if body else {})}, body=body, expect={401}, note=note)
for variant in (f"bearer {live}", f"BEARER {live}", f"Bearer {live} ", f"Bearer  {live}"):
    send("auth", "GET", "/v1/integrations", headers={"Authorization": variant}, expect={200, 401},
         note="scheme case / extra spaces")
RO = auth("read_only")
for method, path, body in [("POST", "/v1/integrations/ups", b"{}"), ("PATCH", "/v1/integrations/ups", b"{}"),
                           ("PUT", "/v1/integrations/ups/credentials", b'{"credentials":{}}'),
                           ("DELETE", "/v1/integrations/ups", None), ("POST", "/v1/integrations/ups/restore", None)]:
    send("scopes", method, path, headers={**RO, **(J if body else {})}, body=body, expect={403}, note="read-only key")
send("scopes", "GET", "/v1/integrations", headers=RO, expect={200}, note="read-only key")
send("scopes", "DELETE", "/v1/integrations/stripe?permanent=true", headers=auth("write_only"), expect={403},
     note="purge without integrations:purge")
T = {**auth("test"), **J}
send("tenancy", "GET", "/v1/integrations/stripe", headers=auth("test"), expect={404}, note="live row, test key")
send("tenancy", "GET", f"/v1/integrations/{keys['live_row_id']}", headers=auth("test"), expect={404},
     note="live row by id, test key")
send("tenancy", "PATCH", "/v1/integrations/stripe", headers=T, body=b'{"display_name":"x"}', expect={404})
send("tenancy", "DELETE", "/v1/integrations/stripe?permanent=true", headers=auth("test"), expect={404})
send("tenancy", "POST", "/v1/integrations/stripe/restore", headers=auth("test"), expect={404})
send("tenancy", "PUT", "/v1/integrations/stripe/credentials", headers=T,
     body=b'{"credentials":{"secret_key":"sk_x"}}', expect={404})
send("tenancy", "POST", "/v1/integrations/plaid", headers=T, body=b'{"mode":"live"}', expect={422},
     note="test key asks for live")
send("tenancy", "GET", f"/v1/integrations/{keys['other_entity_row_id']}", headers=A, expect={404},
     note="another entity's row by id")
send("tenancy", "DELETE", f"/v1/integrations/{keys['other_entity_row_id']}?permanent=true", headers=A, expect={404},
     note="purge another entity's row by id")


# -- concurrent bursts --
EMULATOR_LOG = os.environ.get("EMULATOR_LOG", "")
EMULATOR_FAULTS = 0


def emulator_500s():
    try:
        return sum(1 for line in open(EMULATOR_LOG, errors="replace") if '" 500 -' in line)
    except OSError:
        return None


def burst(n, method, path, headers, bodies, expect, note):
    global EMULATOR_FAULTS
    before = emulator_500s()
    first = len(results)
    with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
        futures = [pool.submit(send, "concurrency", method, path, headers=headers, body=b, expect=expect, note=note)
                   for b in bodies]
        responses = [f.result() for f in futures]
    after = emulator_500s()
    # moto is not thread-safe: concurrent transactions can make it answer 500 ("dictionary
    # changed size during iteration"), which DynamoDB never does. The service's documented
    # answer to a failing dependency is 503 + Retry-After: accept exactly that, only when
    # the emulator's own log shows 500s during this burst, and count it in the summary.
    if before is not None and after is not None and after > before:
        for entry in results[first:]:
            headers_ = {k.lower(): v for k, v in (entry["response_headers"] or {}).items()}
            if entry["status"] == 503 and headers_.get("retry-after"):
                kept = [f for f in entry["failures"] if f["check"] not in ("expected_status", "not_a_server_error")]
                if kept != entry["failures"]:
                    entry["failures"] = kept
                    entry["note"] += "; 503 after the emulator answered 500 (moto is not thread-safe)"
                    EMULATOR_FAULTS += 1
    return responses


send("concurrency", "DELETE", "/v1/integrations/ebay?permanent=true", headers=A, expect={204, 404})
rs = burst(12, "POST", "/v1/integrations/ebay", L, [b"{}"] * 12, {201, 409}, "12 parallel connects")
if sum(1 for r in rs if r is not None and r.status_code == 201) != 1:
    results[-1]["failures"].append({"check": "expected_status", "message": "12 parallel connects: not exactly one 201"})
burst(12, "PATCH", "/v1/integrations/ebay", L, [jb({"display_name": f"n{i}", "config": {"i": i}}) for i in range(12)],
      {200, 409}, "12 parallel edits")
burst(8, "PUT", "/v1/integrations/ebay/credentials", L,
      [jb({"credentials": {"client_id": f"id{i}", "client_secret": f"s{i}", "refresh_token": f"r{i}"}}) for i in range(8)],
      {200, 409}, "8 parallel credential writes")
burst(8, "DELETE", "/v1/integrations/ebay", A, [None] * 8, {200, 409}, "8 parallel disconnects")
burst(8, "POST", "/v1/integrations/ebay/restore", A, [None] * 8, {200, 409}, "8 parallel restores")
k2 = "fuzz-" + uuid.uuid4().hex
send("concurrency", "DELETE", "/v1/integrations/amazon?permanent=true", headers=A, expect={204, 404})
burst(10, "POST", "/v1/integrations/amazon", {**L, "Idempotency-Key": k2}, [b"{}"] * 10, {201, 409},
      "10 parallel connects with one Idempotency-Key")
burst(10, "DELETE", "/v1/integrations/amazon?permanent=true", A, [None] * 10, {204, 404, 409}, "10 parallel purges")

out.close()
# Rewritten from `results`: bursts may have re-judged their entries after the fact.
with open(OUT, "w") as rewritten:
    for entry in results:
        rewritten.write(json.dumps(entry) + "\n")
print(json.dumps({"cases": len(results), "failed": sum(1 for r in results if r["failures"]),
                  "emulator_faults": EMULATOR_FAULTS}))
PY
cat "$OUT/hostile.log"

# ---- summary ------------------------------------------------------------------------------
echo
server_alive=yes; kill -0 "$DEV_PID" 2>/dev/null || server_alive=no
runtime=$(( $(date +%s) - started_at ))
rcs=""; for name in "${!RC[@]}"; do rcs+="$name=${RC[$name]} "; done
"$PY" - "$OUT" "$KEYS" "$SCHEMATHESIS_VERSION" "$server_alive" "$runtime" "$hostile_rc" "$rcs" "$EXAMPLES" "$BASE" <<'PY'
import base64
import collections
import json
import os
import shlex
import sys
from xml.sax.saxutils import escape, quoteattr

out, keys_path, version, server_alive, runtime, hostile_rc, rcs, examples, base = sys.argv[1:10]
keys = json.load(open(keys_path))
canaries = keys["canaries"]
rc = dict(item.split("=") for item in rcs.split())
RUNS = ["main", "test-key", "no-auth", "garbage-auth"]

per_op = collections.Counter()           # operation -> cases
per_run = collections.Counter()          # run -> cases
by_check = collections.Counter()         # check -> failed cases
checks_run = collections.Counter()       # check -> times evaluated
statuses = collections.Counter()         # (operation, status) -> responses
failures = []                            # details of failed cases
errors = []


def decode(blob):
    if not blob:
        return b""
    if isinstance(blob, dict) and "$base64" in blob:
        return base64.b64decode(blob["$base64"])
    if isinstance(blob, dict) and "string" in blob:
        return blob["string"].encode()
    return str(blob).encode()


def curl(request):
    parts = ["curl", "-i", "-X", request["method"], shlex.quote(request["uri"])]
    for name, values in request.get("headers", {}).items():
        if name.lower() in ("user-agent", "accept-encoding", "accept", "connection", "content-length"):
            continue
        for v in values if isinstance(values, list) else [values]:
            parts += ["-H", shlex.quote(f"{name}: {v}")]
    body = decode(request.get("body"))
    if body:
        parts += ["--data-binary", shlex.quote(body.decode("utf-8", "surrogateescape"))]
    return " ".join(parts)


for run in RUNS:
    path = os.path.join(out, f"{run}.ndjson")
    if not os.path.exists(path):
        errors.append({"run": run, "error": f"no report (schemathesis exit code {rc.get(run)})"})
        continue
    run_failed = 0
    for line in open(path):
        event = json.loads(line)
        kind, data = next(iter(event.items()))
        if kind in ("NonFatalError", "FatalError"):
            info = data.get("info") or data.get("value") or data
            errors.append({"run": run, "error": json.dumps(info)[:800]})
            continue
        if kind != "ScenarioFinished":
            continue
        recorder = data["recorder"]
        label = recorder["label"]
        interactions = recorder.get("interactions", {})
        for case_id in recorder.get("cases", {}):
            per_op[label] += 1
            per_run[run] += 1
            inter = interactions.get(case_id)
            failed = {}
            for check in recorder.get("checks", {}).get(case_id, []):
                checks_run[check["name"]] += 1
                if check["status"] == "failure":
                    info = (check.get("failure_info") or {}).get("failure", {})
                    failed.setdefault(check["name"], f"{info.get('title', '')}: {info.get('message', '')}".strip())
            if inter and inter.get("response"):
                resp = inter["response"]
                statuses[(label, resp["status_code"])] += 1
                seen = decode(resp.get("content") or resp.get("body")).decode("utf-8", "replace") + json.dumps(resp.get("headers"))
                if any(c in seen for c in canaries):
                    failed["secret_canary"] = "a stored credential value is in the response"
            for name in failed:
                by_check[name] += 1
            if failed:
                run_failed += 1
                entry = {"run": run, "operation": label, "case_id": case_id, "checks": failed}
                if inter:
                    req, resp = inter["request"], inter.get("response") or {}
                    entry.update(request=curl(req), status=resp.get("status_code"),
                                 response=decode(resp.get("content") or resp.get("body")).decode("utf-8", "replace")[:600])
                failures.append(entry)
        if data.get("status") == "error" and not recorder.get("cases"):
            errors.append({"run": run, "error": f"{label}: scenario errored"})
    if rc.get(run) not in ("0", "1") or (rc.get(run) == "1" and run_failed == 0):
        errors.append({"run": run, "error": f"schemathesis exited with {rc.get(run)} and reported no failing case; see {run}.log"})

hostile = [json.loads(l) for l in open(os.path.join(out, "hostile.ndjson"))] if os.path.exists(os.path.join(out, "hostile.ndjson")) else []
if hostile_rc != "0":
    errors.append({"run": "hostile", "error": f"hostile script exited with {hostile_rc}; see hostile.log"})
for h in hostile:
    per_op[h["label"]] += 1
    per_run["hostile"] += 1
    statuses[(h["label"], h["status"])] += 1
    for c in {f["check"] for f in h["failures"]}:
        by_check[c] += 1
    if h["failures"]:
        req = {"method": h["method"], "uri": base + h["path"], "headers": h["request_headers"],
               "body": {"string": h["request_body"]} if h["request_body"] else None}
        failures.append({"run": "hostile", "operation": h["label"], "case_id": f"{h['group']}: {h['note']}",
                         "checks": {f["check"]: f["message"] for f in h["failures"]},
                         "request": curl(req), "status": h["status"], "response": (h["response_body"] or "")[:600]})

seed_errors = os.path.join(out, "seed-errors.txt")
if os.path.exists(seed_errors):
    for l in open(seed_errors):
        errors.append({"run": "seed", "error": "server error while seeding: " + l.strip()})
panics = sum(1 for l in open(os.path.join(out, "dev-server.log"), errors="replace") if "panicked" in l)
if panics:
    errors.append({"run": "dev-server", "error": f"{panics} panic line(s) in dev-server.log"})
if server_alive != "yes":
    errors.append({"run": "dev-server", "error": "connectors-dev was not running at the end"})

total = sum(per_run.values())
n_fail = len(failures) + len(errors)
lines = [f"schemathesis_version={version}", f"examples_per_operation_main={examples}",
         f"runtime_seconds={runtime}", f"cases_total={total}", f"failures_total={n_fail}",
         f"failed_cases={len(failures)}", f"errors={len(errors)}", f"dev_server_panics={panics}"]
lines += [f"cases.run.{r}={per_run[r]}" for r in RUNS + ["hostile"]]
lines += [f"exit_code.run.{r}={rc.get(r, 'missing')}" for r in RUNS]
lines += [f"cases.operation.{op.replace(' ', '_')}={n}" for op, n in sorted(per_op.items())]
all_checks = sorted(set(checks_run) | set(by_check) | {"not_a_server_error", "status_code_conformance",
                    "content_type_conformance", "response_headers_conformance", "response_schema_conformance",
                    "secret_canary", "expected_status", "transport_error"})
lines += [f"failures.check.{c}={by_check[c]}" for c in all_checks]
lines += [f"evaluations.check.{c}={checks_run[c]}" for c in sorted(checks_run)]
lines += [f"responses.{op.replace(' ', '_')}.{st}={n}" for (op, st), n in sorted(statuses.items(), key=str)]
# Distinct failures: same checks, operation, status and error code count as one.
def signature(f):
    try:
        code = json.loads(f.get("response") or "{}").get("code")
    except (ValueError, AttributeError):
        code = None
    return (tuple(sorted(f["checks"])), f["operation"], f.get("status"), code)


groups = collections.OrderedDict()
for f in failures:
    groups.setdefault(signature(f), []).append(f)
lines.append(f"distinct_failures={len(groups)}")
for i, (sig, members) in enumerate(groups.items(), 1):
    lines.append(f"distinct_failure.{i}=" + json.dumps({"checks": list(sig[0]), "operation": sig[1], "status": sig[2],
                 "code": sig[3], "cases": len(members), "runs": sorted({m["run"] for m in members}),
                 "first": members[0]}, ensure_ascii=False))
for i, f in enumerate(failures, 1):
    lines.append(f"failure.{i}=" + json.dumps(f, ensure_ascii=False))
for i, e in enumerate(errors, 1):
    lines.append(f"error.{i}=" + json.dumps(e, ensure_ascii=False))
open(os.path.join(out, "schemathesis.txt"), "w").write("\n".join(lines) + "\n")

# JUnit for the hand-written requests (schemathesis writes its own per run).
cases_xml = []
for h in hostile:
    name = quoteattr(f"{h['group']}: {h['method']} {h['path'][:120]} {h['note']}".strip())
    if h["failures"]:
        msg = "; ".join(f"{f['check']}: {f['message']}" for f in h["failures"])
        cases_xml.append(f'    <testcase classname="{h["label"]}" name={name}><failure message={quoteattr(msg[:500])}>'
                         f'{escape(json.dumps(h, ensure_ascii=False)[:4000])}</failure></testcase>')
    else:
        cases_xml.append(f'    <testcase classname="{h["label"]}" name={name}/>')
n_hfail = sum(1 for h in hostile if h["failures"])
open(os.path.join(out, "junit-hostile.xml"), "w").write(
    '<?xml version="1.0" encoding="utf-8"?>\n'
    f'<testsuites tests="{len(hostile)}" failures="{n_hfail}">\n'
    f'  <testsuite name="hostile" tests="{len(hostile)}" failures="{n_hfail}">\n' + "\n".join(cases_xml) +
    "\n  </testsuite>\n</testsuites>\n")

print("== cases per operation")
for op, n in sorted(per_op.items()):
    print(f"  {n:6d}  {op}")
print("== cases per run")
for r in RUNS + ["hostile"]:
    print(f"  {per_run[r]:6d}  {r}")
print("== failed cases by check")
for c in all_checks:
    print(f"  {by_check[c]:6d}  {c}")
for sig, members in groups.items():
    f = members[0]
    runs = ", ".join(sorted({m["run"] for m in members}))
    print(f"\n-- FAIL {f['operation']} -> {sig[2]} {sig[3] or ''}: {', '.join(sig[0])} "
          f"({len(members)} case{'s' if len(members) > 1 else ''}; {runs}; first: {f['case_id']})")
    for c, m in f["checks"].items():
        print(f"   {c}: {m[:300]}")
    print(f"   -> {(f.get('response') or '')[:300]}")
    print(f"   reproduce: {(f.get('request') or '')[:700]}")
for e in errors:
    print(f"\n-- ERROR [{e['run']}] {e['error']}")
print(f"\nruntime {runtime}s; details in {os.path.relpath(out)}/schemathesis.txt")
emulator_503s = sum(1 for h in hostile if "moto is not thread-safe" in h["note"])
extra = f" ({emulator_503s} concurrent requests answered 503 after the emulator itself failed)" if emulator_503s else ""
print(f"schemathesis: {total} cases, {n_fail} failures{extra}")
sys.exit(1 if n_fail else 0)
PY

"""`make sam-local-smoke`: drives the template's functions under SAM local.

Run by `infra/sam_local.sh smoke` once `sam local start-api` is starting, with the API's
base URL, the built template and the connectors-admin binary (in cargo's target
directory, wherever CARGO_TARGET_DIR puts it):

1. through the API on port 3001, the lifecycle connect -> credentials (two versions, the
   versions list, a rollback and its 400/404/409) -> get -> list -> sync reports ->
   disconnect -> restore -> permanent delete, plus what no route matches (404, 405) and
   a call without a key (401);
2. each percent-encoded path of infra/encoded-paths.json, with the answer the dev server
   and the API Gateway events give;
3. `sam local invoke` of every function with every file in events/ (the bus's
   sync.reported sample with a real row's entity and id), and with AWS's own
   sample events from `sam local generate-event` adjusted only in path, method, headers
   and body (an HTTP API call, a REST API call, the scheduled event for the sweeper).

Every answer is checked against openapi.yaml (status, and the body against its schema),
and the first and warm call through the API are timed: the first call of a function
starts its container.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import jsonschema
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLACEHOLDER = "ark_test_ent_placeholder0_REPLACEWITHAREALTESTKEYFROMADMIN"
ADMIN = None  # the connectors-admin binary: main() sets it from argv
ALL_SCOPES = ["integrations:read", "integrations:write", "integrations:credentials", "integrations:purge", "integrations:sync"]

# events/<name>-<flavour>.json: the function that serves it, its documented status and
# body schema, in lifecycle order.
SAMPLE_EVENTS = [
    ("connect", "ConnectFunction", 201, "RowResponse"),
    ("credentials", "CredentialsFunction", 200, "RowResponse"),
    ("get", "GetFunction", 200, "RowResponse"),
    ("list", "ListFunction", 200, "ListResponse"),
    ("update", "UpdateFunction", 200, "RowResponse"),
    ("report", "ReportFunction", 200, "RowResponse"),
    ("disconnect", "DisconnectFunction", 200, "RowResponse"),
    ("restore", "RestoreFunction", 200, "RowResponse"),
    ("purge", "DisconnectFunction", 204, None),
]

_openapi = yaml.safe_load(open(os.path.join(ROOT, "openapi.yaml"), encoding="utf-8"))


def check_schema(name, body):
    """Validates `body` against components.schemas.<name> of openapi.yaml."""
    schema = {"$ref": f"#/components/schemas/{name}", "components": _openapi["components"]}
    jsonschema.Draft202012Validator(schema).validate(body)


def new_key(live=False):
    """A key with every scope for a fresh entity, from the admin CLI (as `make dev` makes them)."""
    entity = subprocess.run(
        [sys.executable, "-c", "import uuid; print(uuid.uuid4())"], capture_output=True, text=True, check=True
    ).stdout.strip()
    args = [ADMIN, "keys", "create", "--entity", entity]
    for scope in ALL_SCOPES:
        args += ["--scope", scope]
    if live:
        args.append("--live")
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return out.strip().splitlines()[-1]


class Api:
    def __init__(self, base):
        self.base = base
        self.timings = []

    def call(self, method, path, key=None, body=None, label=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if key:
            req.add_header("Authorization", f"Bearer {key}")
        if body is not None:
            req.add_header("Content-Type", "application/json")
        started = time.monotonic()
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                status, headers, raw = resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            status, headers, raw = e.code, e.headers, e.read()
        elapsed_ms = (time.monotonic() - started) * 1000
        if label:
            self.timings.append((label, elapsed_ms))
        body = json.loads(raw) if raw else None
        return status, headers, body

    def wait_until_up(self, deadline_s=180):
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            try:
                urllib.request.urlopen(self.base + "/", timeout=2)
                return
            except urllib.error.HTTPError:
                return  # anything that answers HTTP is up
            except OSError:
                time.sleep(0.5)
        sys.exit(f"sam local start-api did not answer at {self.base} within {deadline_s} s")


def expect(what, status, headers, body, want_status, schema=None):
    if status != want_status:
        sys.exit(f"FAIL {what}: status {status}, expected {want_status}: {body}")
    if want_status >= 400:
        check_schema("Error", body)
        if headers.get("x-request-id") != body["request_id"]:
            sys.exit(f"FAIL {what}: x-request-id {headers.get('x-request-id')} != {body['request_id']}")
    elif schema:
        check_schema(schema, body)
    elif want_status == 204 and body is not None:
        sys.exit(f"FAIL {what}: a body where none belongs: {body}")
    print(f"ok   {what}: {status}")
    return body


def walk_the_api(api):
    key = new_key()
    # (The fallback's container is already warm: the readiness probe above went to it.)
    expect("unknown path (fallback, /{proxy+})", *api.call("GET", "/v1/nothing"), 404)
    expect("unknown path below a route (fallback, /{proxy+})", *api.call("GET", "/v1/integrations/stripe/x"), 404)
    # The fallback has PUT, HEAD and OPTIONS on the resource of GET, POST, PATCH and
    # DELETE: the wrong method goes to it, the right ones (the walk below) to their functions.
    status, headers, body = api.call("PUT", "/v1/integrations/stripe", key)
    expect("wrong method (fallback, by name on the route's resource)", status, headers, body, 405)
    if headers.get("Allow") != "GET, POST, PATCH, DELETE":
        sys.exit(f"FAIL 405 without the Allow header: {headers.get('Allow')}")
    status, headers, body = api.call("GET", "/v1/integrations/stripe/restore", key)
    expect("wrong method on restore (fallback)", status, headers, body, 405)
    expect("no key", *api.call("GET", "/v1/integrations"), 401)

    row = expect(
        "connect",
        *api.call("POST", "/v1/integrations/stripe", key, {"display_name": "Stripe (SAM local)"}, "connect first"),
        201,
        "RowResponse",
    )["data"]
    row = expect(
        "credentials",
        *api.call("PUT", "/v1/integrations/stripe/credentials", key, {"credentials": {"secret_key": "sk_test_sam"}}),
        200,
        "RowResponse",
    )["data"]
    if row["credentials_masked"] != ["secret_key"] or "sk_test_sam" in json.dumps(row):
        sys.exit(f"FAIL credentials: {row}")
    first_version = walk_credential_versions(api, key)
    got = expect("get", *api.call("GET", "/v1/integrations/stripe", key, label="get first"), 200, "RowResponse")
    expect("get again (warm)", *api.call("GET", f"/v1/integrations/{row['id']}", key, label="get warm"), 200)
    for _ in range(4):
        api.call("GET", "/v1/integrations/stripe", key, label="get warm")
    if got["data"]["id"] != row["id"]:
        sys.exit("FAIL get: another row")
    listed = expect("list", *api.call("GET", "/v1/integrations", key), 200, "ListResponse")
    if [r["id"] for r in listed["data"]] != [row["id"]]:
        sys.exit(f"FAIL list: {listed}")
    reported = expect(
        "sync report",
        *api.call("POST", "/v1/integrations/stripe/sync-reports", key,
                  {"outcome": "failed", "error": {"code": "auth_failed", "message": "token revoked"}}),
        200,
        "RowResponse",
    )["data"]
    if (reported["health"], reported["sync_error"]) != ("auth_failed", "auth_failed: token revoked"):
        sys.exit(f"FAIL sync report: {reported}")
    expect("sync report without an outcome", *api.call("POST", "/v1/integrations/stripe/sync-reports", key, {}), 422)
    broken = expect("list ?health=auth_failed", *api.call("GET", "/v1/integrations?health=auth_failed", key), 200,
                    "ListResponse")
    if [r["id"] for r in broken["data"]] != [row["id"]]:
        sys.exit(f"FAIL list ?health=: {broken}")
    gone = expect("disconnect", *api.call("DELETE", "/v1/integrations/stripe", key), 200, "RowResponse")["data"]
    if gone["is_active"] or not gone["recoverable_until"]:
        sys.exit(f"FAIL disconnect: {gone}")
    rollback = "/v1/integrations/stripe/credentials/rollback"
    expect("rollback of a disconnected connector", *api.call("POST", rollback, key, {"version": first_version}), 409)
    expect("versions of a disconnected connector", *api.call("GET", "/v1/integrations/stripe/credentials/versions", key), 200, "CredentialVersionList")
    back = expect("restore", *api.call("POST", "/v1/integrations/stripe/restore", key), 200, "RowResponse")["data"]
    if (not back["is_active"] or back["id"] != row["id"] or back["credentials_masked"] != ["secret_key"]
            or back["health"] != "unknown" or back["sync_status"] != "failed"):
        sys.exit(f"FAIL restore: {back}")
    status, _, body = api.call("DELETE", "/v1/integrations/stripe?permanent=true", key)
    if status != 204 or body is not None:
        sys.exit(f"FAIL permanent delete: {status} {body}")
    print("ok   permanent delete: 204")
    expect("get after the permanent delete", *api.call("GET", "/v1/integrations/stripe", key), 404)


def send_encoded_paths(api):
    """infra/encoded-paths.json through SAM local: each percent-encoded path, sent as is by a
    fresh tenant, gets the status and `param` the dev server and the events give (the Rust
    test paths.rs checks those two)."""
    with open(os.path.join(ROOT, "infra/encoded-paths.json"), encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    for case in cases:
        body = {} if case["method"] == "POST" else None
        status, _, answer = api.call(case["method"], case["path"], new_key(), body)
        param = (answer or {}).get("param")
        if (status, param) != (case["status"], case["param"]):
            sys.exit(f"FAIL {case['method']} {case['path']}: {status} param={param}, "
                     f"expected {case['status']} param={case['param']}")
        print(f"ok   {case['method']} {case['path']}: {status}" + (f" param={param}" if param else ""))


def sam_local_invoke(template, function, event):
    """`sam local invoke` with the arguments sam_local.sh gave start-api; the handler's result."""
    sam_args = open(os.environ["SAM_ARGS_FILE"], encoding="utf-8").read().splitlines()
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(event, f)
    try:
        done = subprocess.run(
            ["sam", "local", "invoke", function, "-t", template, "-e", f.name, *sam_args],
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        os.unlink(f.name)
    if done.returncode != 0:
        sys.exit(f"FAIL sam local invoke {function}: exit {done.returncode}\n{done.stderr[-3000:]}")
    # The result is the last line of stdout; the function's logs go to stderr.
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return json.loads(lines[-1]), done.stderr


def check_http_result(what, result, want_status, schema):
    status = result["statusCode"]
    raw = result.get("body") or ""
    body = json.loads(raw) if raw else None
    # A REST API (payload 1.0) answer may carry its headers in multiValueHeaders only
    # (lambda_http writes them there); API Gateway merges both into the HTTP answer.
    headers = {k.lower(): v[0] for k, v in (result.get("multiValueHeaders") or {}).items() if v}
    headers.update({k.lower(): v for k, v in (result.get("headers") or {}).items()})
    headers = {"x-request-id": headers.get("x-request-id")}
    expect(what, status, headers, body, want_status, schema)


def walk_credential_versions(api, key):
    """A second version, the list, a rollback to the first and its error statuses; the
    credentials function serves all three routes. Returns the first version's id."""
    newer = {"credentials": {"secret_key": "sk_test_sam2", "publishable_key": "pk_test_sam2"}}
    expect("credentials, a second version", *api.call("PUT", "/v1/integrations/stripe/credentials", key, newer), 200, "RowResponse")
    versions = "/v1/integrations/stripe/credentials/versions"
    listed = expect("credential versions", *api.call("GET", versions, key), 200, "CredentialVersionList")
    if [v["current"] for v in listed["data"]] != [True, False] or "sk_test_sam" in json.dumps(listed):
        sys.exit(f"FAIL credential versions: {listed}")
    first = listed["data"][1]["version"]
    rollback = "/v1/integrations/stripe/credentials/rollback"
    row = expect("rollback", *api.call("POST", rollback, key, {"version": first}), 200, "RowResponse")["data"]
    if row["credentials_masked"] != ["secret_key"]:
        sys.exit(f"FAIL rollback: {row}")
    expect("rollback to the current version (no-op)", *api.call("POST", rollback, key, {"version": first}), 200, "RowResponse")
    status, headers, body = api.call("POST", rollback, key, {})
    expect("rollback without a version", status, headers, body, 400)
    if body["param"] != "version":
        sys.exit(f"FAIL rollback without a version: {body}")
    status, headers, body = api.call("POST", rollback, key, {"version": "no-such-version"})
    expect("rollback to an unknown version", status, headers, body, 404)
    if body["param"] != "version":
        sys.exit(f"FAIL rollback to an unknown version: {body}")
    status, headers, body = api.call("GET", rollback, key)
    expect("wrong method on rollback (fallback)", status, headers, body, 405)
    return first


def invoke_sample_events(template):
    for flavour in ["http-api", "rest-api"]:
        key = new_key()
        for name, function, status, schema in SAMPLE_EVENTS:
            text = open(os.path.join(ROOT, "events", f"{name}-{flavour}.json"), encoding="utf-8").read()
            result, _ = sam_local_invoke(template, function, json.loads(text.replace(PLACEHOLDER, key)))
            check_http_result(f"invoke {function} events/{name}-{flavour}.json", result, status, schema)
    for flavour in ("rest-api", "http-api"):
        name = f"events/fallback-{flavour}.json"
        result, _ = sam_local_invoke(template, "FallbackFunction", json.load(open(os.path.join(ROOT, name))))
        check_http_result(f"invoke FallbackFunction {name}", result, 405, None)
    invoke_sync_reported(template)
    report, logs = sam_local_invoke(
        template, "SweeperFunction", json.load(open(os.path.join(ROOT, "events/sweeper-schedule.json")))
    )
    check_sweep("invoke SweeperFunction events/sweeper-schedule.json", report, logs)


def invoke_sync_reported(template):
    """events/sync-reported.json through the SyncFunction, naming a row connected (through
    the ConnectFunction) for a fresh tenant: applied, counted, and the row shows it."""
    key = new_key()
    text = open(os.path.join(ROOT, "events", "connect-http-api.json"), encoding="utf-8").read()
    result, _ = sam_local_invoke(template, "ConnectFunction", json.loads(text.replace(PLACEHOLDER, key)))
    check_http_result("invoke ConnectFunction (a row for the sync report)", result, 201, "RowResponse")
    row = json.loads(result["body"])["data"]
    event = json.load(open(os.path.join(ROOT, "events", "sync-reported.json"), encoding="utf-8"))
    event["detail"]["entity_id"], event["detail"]["connector_id"] = row["entity_id"], row["id"]
    handled, logs = sam_local_invoke(template, "SyncFunction", event)
    if handled != "applied" or '"applied":1' not in logs.replace(" ", ""):
        sys.exit(f"FAIL invoke SyncFunction events/sync-reported.json: {handled}")
    print(f"ok   invoke SyncFunction events/sync-reported.json: {handled}")
    text = open(os.path.join(ROOT, "events", "get-http-api.json"), encoding="utf-8").read()
    result, _ = sam_local_invoke(template, "GetFunction", json.loads(text.replace(PLACEHOLDER, key)))
    check_http_result("invoke GetFunction after the bus's report", result, 200, "RowResponse")
    if json.loads(result["body"])["data"]["health"] != "auth_failed":
        sys.exit(f"FAIL the bus's report did not reach the row: {result['body']}")


def check_sweep(what, report, logs):
    if not isinstance(report, dict) or report.get("failed") != 0 or report.get("bad_items") != 0:
        sys.exit(f"FAIL {what}: {report}")
    if '"undelivered_records"' not in logs:
        sys.exit(f"FAIL {what}: no EMF metrics line in the logs")
    print(f"ok   {what}: {report}")


def generated_event(*args):
    out = subprocess.run(["sam", "local", "generate-event", *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def invoke_generated_events(template):
    """AWS's own samples, changed only in path, method, headers and body."""
    key = new_key()
    auth = f"Bearer {key}"

    event = generated_event("apigateway", "http-api-proxy")
    path = "/v1/integrations/shippo"
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = "POST"
    event["routeKey"] = event["requestContext"]["routeKey"] = "POST /v1/integrations/{connector}"
    event["pathParameters"] = {"connector": "shippo"}
    event["rawQueryString"], event["queryStringParameters"] = "", {}
    event["headers"] = {"authorization": auth, "content-type": "application/json"}
    event["cookies"] = []
    event["body"], event["isBase64Encoded"] = json.dumps({"display_name": "Shippo"}), False
    result, _ = sam_local_invoke(template, "ConnectFunction", event)
    check_http_result("invoke ConnectFunction with `generate-event apigateway http-api-proxy`", result, 201, "RowResponse")

    event = generated_event("apigateway", "aws-proxy")
    event["path"] = event["requestContext"]["path"] = "/v1/integrations/shippo"
    event["resource"] = event["requestContext"]["resourcePath"] = "/v1/integrations/{connector}"
    event["httpMethod"] = event["requestContext"]["httpMethod"] = "GET"
    event["pathParameters"] = {"connector": "shippo"}
    event["queryStringParameters"] = event["multiValueQueryStringParameters"] = None
    event["headers"] = {"Authorization": auth}
    event["multiValueHeaders"] = {"Authorization": [auth]}
    event["body"], event["isBase64Encoded"] = None, False
    result, _ = sam_local_invoke(template, "GetFunction", event)
    check_http_result("invoke GetFunction with `generate-event apigateway aws-proxy`", result, 200, "RowResponse")

    report, logs = sam_local_invoke(template, "SweeperFunction", generated_event("cloudwatch", "scheduled-event"))
    check_sweep("invoke SweeperFunction with `generate-event cloudwatch scheduled-event`", report, logs)


def main():
    global ADMIN
    base, template, ADMIN = sys.argv[1], sys.argv[2], sys.argv[3]
    started = time.monotonic()
    api = Api(base)
    api.wait_until_up()
    walk_the_api(api)
    send_encoded_paths(api)
    invoke_sample_events(template)
    invoke_generated_events(template)
    warm = sorted(ms for label, ms in api.timings if label == "get warm")
    first = {label: ms for label, ms in api.timings if label.endswith("first")}
    print(
        "sam-local-smoke: ok in %.0f s; through SAM: first call (container start) get %.0f ms, "
        "connect %.0f ms; warm get median %.0f ms (of %d)"
        % (time.monotonic() - started, first["get first"], first["connect first"], warm[len(warm) // 2], len(warm))
    )


if __name__ == "__main__":
    main()

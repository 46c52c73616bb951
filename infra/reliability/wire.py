"""Sends hand-written requests to the dev server exactly as written (path, header bytes,
body) and checks each answer against openapi.yaml with schemathesis' own checks, plus
what every answer of the API must hold: an x-request-id, Cache-Control: no-store, the
Error envelope (with that request id) on 4xx/5xx, Allow on 405, no 5xx and no secret
canary. Each request becomes one entry of `results` and one line of the NDJSON file."""

import concurrent.futures
import json
import re

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

from .helpers import clip, template_of

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
REQ_ID = re.compile(r"^req_[0-9a-f]{32}$")


class Wire:
    def __init__(self, spec, base, canaries, out):
        self.schema = schemathesis.openapi.from_path(spec)
        self.error = jsonschema.Draft202012Validator(self.schema.raw_schema["components"]["schemas"]["Error"])
        self.base = base
        self.canaries = canaries
        self.session = requests.Session()
        self.out = out
        self.results = []

    def send(self, group, method, path, *, headers=None, body=None, expect=None, note=""):
        """Sends one request with the path exactly as written and checks the response."""
        headers = dict(headers or {})
        try:
            prepped = self.session.prepare_request(
                requests.Request(method, self.base + path, headers=headers, data=body))
        except ValueError as exc:  # a header value the client refuses to send: nothing to test
            print(f"skipped {group}/{note}: {exc}")
            return None
        prepped.url = self.base + path
        try:
            resp = self.session.send(prepped, timeout=30, allow_redirects=False)
        except requests.RequestException as exc:
            self.record(group, method, path, headers, body, None, [("transport_error", repr(exc)[:300])], note)
            return None
        self.record(group, method, path, headers, body, resp, self.validate(method, path, headers, resp, expect), note)
        return resp

    def burst(self, n, method, path, headers, bodies, expect, note):
        """Sends `bodies` (one request each) on n threads at once; returns the responses."""
        with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
            futures = [pool.submit(self.send, "concurrency", method, path, headers=headers, body=b,
                                   expect=expect, note=note) for b in bodies]
            return [f.result() for f in futures]

    def fail_last(self, message):
        """Adds an expected_status failure to the last request sent."""
        self.results[-1]["failures"].append({"check": "expected_status", "message": message})

    def validate(self, method, path, headers, resp, expect):
        failures = []
        tpl, params = template_of(path)
        op = None
        if tpl is not None:
            try:
                op = self.schema[tpl][method]
            except LookupError:
                op = None
        if op is not None:
            case = op.Case(path_parameters=params, headers=headers)
            for check in CHECKS:
                try:
                    case.validate_response(resp, checks=[check])
                except (Exception, BaseExceptionGroup) as exc:  # a Failure or a FailureGroup
                    inner = exc.exceptions if isinstance(exc, BaseExceptionGroup) else [exc]
                    failures.append((check.__name__,
                                     "; ".join(getattr(e, "title", None) or str(e) for e in inner)[:300]))
        # What every response of the API must hold, documented operation or not.
        rid = resp.headers.get("x-request-id", "")
        if not REQ_ID.match(rid):
            failures.append(("response_headers_conformance", f"x-request-id is {rid!r}"))
        if resp.headers.get("cache-control") != "no-store":
            failures.append(("response_headers_conformance",
                             f"cache-control is {resp.headers.get('cache-control')!r}"))
        if resp.status_code >= 400 and method != "HEAD":  # a HEAD answer never has a body
            try:
                envelope = resp.json()
            except ValueError:
                failures.append(("response_schema_conformance", "error body is not JSON"))
            else:
                err = next(iter(self.error.iter_errors(envelope)), None)
                if err is not None:
                    failures.append(("response_schema_conformance", f"not an Error envelope: {err.message[:200]}"))
                elif envelope.get("request_id") != rid:
                    failures.append(("response_schema_conformance", "request_id differs from x-request-id"))
        if resp.status_code == 405 and not resp.headers.get("allow"):
            failures.append(("response_headers_conformance", "405 without Allow"))
        if resp.status_code >= 500 and not any(c == "not_a_server_error" for c, _ in failures):
            failures.append(("not_a_server_error", f"server error {resp.status_code}"))
        seen = resp.text + json.dumps(dict(resp.headers))
        if any(canary in seen for canary in self.canaries):
            failures.append(("secret_canary", "a stored credential value is in the response"))
        if expect is not None and resp.status_code not in expect:
            failures.append(("expected_status", f"expected {sorted(expect)}, got {resp.status_code}"))
        return failures

    def label(self, method, path):
        tpl = template_of(path)[0]
        if tpl is None:
            return f"{method} (no documented path)"
        if method.lower() in self.schema.raw_schema["paths"][tpl]:
            return f"{method} {tpl}"
        return f"{method} {tpl} (method not documented)"

    def record(self, group, method, path, headers, body, resp, failures, note):
        entry = {
            "group": group, "note": note,
            "label": self.label(method, path),
            "method": method, "path": clip(path),
            "request_headers": {k: clip(v if isinstance(v, str) else v.decode("latin-1"), 120)
                                for k, v in headers.items()},
            "request_body": clip(body) if body is not None else None,
            "status": resp.status_code if resp is not None else None,
            "response_headers": dict(resp.headers) if resp is not None else None,
            "response_body": resp.text[:600] if resp is not None else None,
            "failures": [{"check": c, "message": m} for c, m in failures],
        }
        self.results.append(entry)
        self.out.write(json.dumps(entry) + "\n")
        self.out.flush()

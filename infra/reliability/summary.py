"""The run's summary: reads the schemathesis reports (<run>.ndjson), hostile.ndjson,
seed-errors.txt and dev-server.log in the output directory; writes schemathesis.txt
(key=value lines), junit-hostile.xml (schemathesis writes its own per run); prints the
counts, each distinct failure with a curl command to reproduce it, and last
`schemathesis: N cases, F failures`. Exits 1 on any failure or error.

Usage: python -m reliability.summary OUT KEYS_JSON VERSION SERVER_ALIVE RUNTIME HOSTILE_RC
       "run=rc …" EXAMPLES BASE_URL"""

import collections
import json
import os
import sys
from xml.sax.saxutils import escape, quoteattr

from .helpers import curl, decode, failure_signature

RUNS = ["main", "test-key", "no-auth", "garbage-auth"]
ALWAYS_LISTED = {"not_a_server_error", "status_code_conformance", "content_type_conformance",
                 "response_headers_conformance", "response_schema_conformance", "secret_canary",
                 "expected_status", "transport_error"}


class Tally:
    def __init__(self):
        self.per_op = collections.Counter()      # operation -> cases
        self.per_run = collections.Counter()     # run -> cases
        self.by_check = collections.Counter()    # check -> failed cases
        self.checks_run = collections.Counter()  # check -> times evaluated
        self.statuses = collections.Counter()    # (operation, status) -> responses
        self.failures = []                       # details of failed cases
        self.errors = []


def read_schemathesis(t, out, run, rc, canaries):
    """One run's NDJSON report into the tally."""
    path = os.path.join(out, f"{run}.ndjson")
    if not os.path.exists(path):
        t.errors.append({"run": run, "error": f"no report (schemathesis exit code {rc})"})
        return
    run_failed = 0
    for line in open(path):
        event = json.loads(line)
        kind, data = next(iter(event.items()))
        if kind in ("NonFatalError", "FatalError"):
            info = data.get("info") or data.get("value") or data
            t.errors.append({"run": run, "error": json.dumps(info)[:800]})
            continue
        if kind != "ScenarioFinished":
            continue
        recorder = data["recorder"]
        label = recorder["label"]
        interactions = recorder.get("interactions", {})
        for case_id in recorder.get("cases", {}):
            t.per_op[label] += 1
            t.per_run[run] += 1
            inter = interactions.get(case_id)
            failed = {}
            for check in recorder.get("checks", {}).get(case_id, []):
                t.checks_run[check["name"]] += 1
                if check["status"] == "failure":
                    info = (check.get("failure_info") or {}).get("failure", {})
                    failed.setdefault(check["name"], f"{info.get('title', '')}: {info.get('message', '')}".strip())
            if inter and inter.get("response"):
                resp = inter["response"]
                t.statuses[(label, resp["status_code"])] += 1
                seen = (decode(resp.get("content") or resp.get("body")).decode("utf-8", "replace")
                        + json.dumps(resp.get("headers")))
                if any(c in seen for c in canaries):
                    failed["secret_canary"] = "a stored credential value is in the response"
            for name in failed:
                t.by_check[name] += 1
            if failed:
                run_failed += 1
                entry = {"run": run, "operation": label, "case_id": case_id, "checks": failed}
                if inter:
                    req, resp = inter["request"], inter.get("response") or {}
                    entry.update(request=curl(req), status=resp.get("status_code"),
                                 response=decode(resp.get("content") or resp.get("body"))
                                 .decode("utf-8", "replace")[:600])
                t.failures.append(entry)
        if data.get("status") == "error" and not recorder.get("cases"):
            t.errors.append({"run": run, "error": f"{label}: scenario errored"})
    if rc not in ("0", "1") or (rc == "1" and run_failed == 0):
        t.errors.append({"run": run, "error": f"schemathesis exited with {rc} and reported no failing case; see {run}.log"})


def read_hostile(t, out, hostile_rc, base):
    """hostile.ndjson into the tally; returns its entries."""
    path = os.path.join(out, "hostile.ndjson")
    hostile = [json.loads(line) for line in open(path)] if os.path.exists(path) else []
    if hostile_rc != "0":
        t.errors.append({"run": "hostile", "error": f"hostile script exited with {hostile_rc}; see hostile.log"})
    for h in hostile:
        t.per_op[h["label"]] += 1
        t.per_run["hostile"] += 1
        t.statuses[(h["label"], h["status"])] += 1
        for c in {f["check"] for f in h["failures"]}:
            t.by_check[c] += 1
        if h["failures"]:
            req = {"method": h["method"], "uri": base + h["path"], "headers": h["request_headers"],
                   "body": {"string": h["request_body"]} if h["request_body"] else None}
            t.failures.append({"run": "hostile", "operation": h["label"], "case_id": f"{h['group']}: {h['note']}",
                               "checks": {f["check"]: f["message"] for f in h["failures"]},
                               "request": curl(req), "status": h["status"],
                               "response": (h["response_body"] or "")[:600]})
    return hostile


def read_server(t, out, server_alive):
    """Seed errors, panics and a dead dev server are errors; returns the panic count."""
    seed_errors = os.path.join(out, "seed-errors.txt")
    if os.path.exists(seed_errors):
        for line in open(seed_errors):
            t.errors.append({"run": "seed", "error": "server error while seeding: " + line.strip()})
    panics = sum(1 for line in open(os.path.join(out, "dev-server.log"), errors="replace") if "panicked" in line)
    if panics:
        t.errors.append({"run": "dev-server", "error": f"{panics} panic line(s) in dev-server.log"})
    if server_alive != "yes":
        t.errors.append({"run": "dev-server", "error": "connectors-dev was not running at the end"})
    return panics


def group_failures(failures):
    groups = collections.OrderedDict()
    for f in failures:
        groups.setdefault(failure_signature(f), []).append(f)
    return groups


def summary_lines(t, groups, rc, version, examples, runtime, panics, all_checks):
    total = sum(t.per_run.values())
    lines = [f"schemathesis_version={version}", f"examples_per_operation_main={examples}",
             f"runtime_seconds={runtime}", f"cases_total={total}",
             f"failures_total={len(t.failures) + len(t.errors)}",
             f"failed_cases={len(t.failures)}", f"errors={len(t.errors)}", f"dev_server_panics={panics}"]
    lines += [f"cases.run.{r}={t.per_run[r]}" for r in RUNS + ["hostile"]]
    lines += [f"exit_code.run.{r}={rc.get(r, 'missing')}" for r in RUNS]
    lines += [f"cases.operation.{op.replace(' ', '_')}={n}" for op, n in sorted(t.per_op.items())]
    lines += [f"failures.check.{c}={t.by_check[c]}" for c in all_checks]
    lines += [f"evaluations.check.{c}={t.checks_run[c]}" for c in sorted(t.checks_run)]
    lines += [f"responses.{op.replace(' ', '_')}.{st}={n}" for (op, st), n in sorted(t.statuses.items(), key=str)]
    lines.append(f"distinct_failures={len(groups)}")
    for i, (sig, members) in enumerate(groups.items(), 1):
        lines.append(f"distinct_failure.{i}=" + json.dumps(
            {"checks": list(sig[0]), "operation": sig[1], "status": sig[2], "code": sig[3], "cases": len(members),
             "runs": sorted({m["run"] for m in members}), "first": members[0]}, ensure_ascii=False))
    for i, f in enumerate(t.failures, 1):
        lines.append(f"failure.{i}=" + json.dumps(f, ensure_ascii=False))
    for i, e in enumerate(t.errors, 1):
        lines.append(f"error.{i}=" + json.dumps(e, ensure_ascii=False))
    return lines


def junit_hostile(hostile):
    cases_xml = []
    for h in hostile:
        name = quoteattr(f"{h['group']}: {h['method']} {h['path'][:120]} {h['note']}".strip())
        if h["failures"]:
            msg = "; ".join(f"{f['check']}: {f['message']}" for f in h["failures"])
            cases_xml.append(f'    <testcase classname="{h["label"]}" name={name}><failure message={quoteattr(msg[:500])}>'
                             f'{escape(json.dumps(h, ensure_ascii=False)[:4000])}</failure></testcase>')
        else:
            cases_xml.append(f'    <testcase classname="{h["label"]}" name={name}/>')
    n_fail = sum(1 for h in hostile if h["failures"])
    return ('<?xml version="1.0" encoding="utf-8"?>\n'
            f'<testsuites tests="{len(hostile)}" failures="{n_fail}">\n'
            f'  <testsuite name="hostile" tests="{len(hostile)}" failures="{n_fail}">\n' + "\n".join(cases_xml) +
            "\n  </testsuite>\n</testsuites>\n")


def main(out, keys_path, version, server_alive, runtime, hostile_rc, rcs, examples, base):
    with open(keys_path) as f:
        canaries = json.load(f)["canaries"]
    rc = dict(item.split("=") for item in rcs.split())
    t = Tally()
    for run in RUNS:
        read_schemathesis(t, out, run, rc.get(run), canaries)
    hostile = read_hostile(t, out, hostile_rc, base)
    panics = read_server(t, out, server_alive)
    groups = group_failures(t.failures)
    all_checks = sorted(set(t.checks_run) | set(t.by_check) | ALWAYS_LISTED)
    with open(os.path.join(out, "schemathesis.txt"), "w") as f:
        f.write("\n".join(summary_lines(t, groups, rc, version, examples, runtime, panics, all_checks)) + "\n")
    with open(os.path.join(out, "junit-hostile.xml"), "w") as f:
        f.write(junit_hostile(hostile))

    print("== cases per operation")
    for op, n in sorted(t.per_op.items()):
        print(f"  {n:6d}  {op}")
    print("== cases per run")
    for r in RUNS + ["hostile"]:
        print(f"  {t.per_run[r]:6d}  {r}")
    print("== failed cases by check")
    for c in all_checks:
        print(f"  {t.by_check[c]:6d}  {c}")
    for sig, members in groups.items():
        f = members[0]
        runs = ", ".join(sorted({m["run"] for m in members}))
        print(f"\n-- FAIL {f['operation']} -> {sig[2]} {sig[3] or ''}: {', '.join(sig[0])} "
              f"({len(members)} case{'s' if len(members) > 1 else ''}; {runs}; first: {f['case_id']})")
        for c, m in f["checks"].items():
            print(f"   {c}: {m[:300]}")
        print(f"   -> {(f.get('response') or '')[:300]}")
        print(f"   reproduce: {(f.get('request') or '')[:700]}")
    for e in t.errors:
        print(f"\n-- ERROR [{e['run']}] {e['error']}")
    print(f"\nruntime {runtime}s; details in {os.path.relpath(out)}/schemathesis.txt")
    emulator_503s = sum(1 for h in hostile if "moto is not thread-safe" in h["note"])
    extra = (f" ({emulator_503s} concurrent requests answered 503 after the emulator itself failed)"
             if emulator_503s else "")
    n_fail = len(t.failures) + len(t.errors)
    print(f"schemathesis: {sum(t.per_run.values())} cases, {n_fail} failures{extra}")
    return 1 if n_fail else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:10]))

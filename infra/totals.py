"""The total of `make test`'s output (infra/test.sh): every `test result:` line of
`cargo test` and the closing lines of Python's unittest (`Ran N tests`, then `OK` or
`FAILED (failures=F, errors=E)`) summed into `total: N passed, F failed, S skipped`.

Usage: python3 infra/totals.py LOG"""

import re
import sys

RESULT = re.compile(r"test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored")
UNITTEST_RAN = re.compile(r"Ran (\d+) tests? in ")
UNITTEST_END = re.compile(r"(OK|FAILED)(?: \((.*)\))?$")


def total(lines):
    passed = failed = ignored = 0
    ran = None
    for line in lines:
        m = RESULT.match(line)
        if m:
            passed += int(m[1])
            failed += int(m[2])
            ignored += int(m[3])
        m = UNITTEST_RAN.match(line)
        if m:
            ran = int(m[1])
            continue
        m = UNITTEST_END.match(line.strip())
        if ran is not None and m:
            counts = dict(kv.split("=") for kv in (m[2] or "").split(", ") if "=" in kv)
            bad = int(counts.get("failures", 0)) + int(counts.get("errors", 0))
            skipped = int(counts.get("skipped", 0))
            passed += ran - bad - skipped
            failed += bad
            ignored += skipped
            ran = None
    return f"total: {passed} passed, {failed} failed, {ignored} skipped"


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8", errors="replace") as f:
        print(total(f))

"""The total of `cargo test`'s output (infra/test.sh): every `test result:` line summed
into `total: N passed, F failed, S skipped`.

Usage: python3 infra/totals.py LOG"""

import re
import sys

RESULT = re.compile(r"test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored")


def total(lines):
    passed = failed = ignored = 0
    for line in lines:
        m = RESULT.match(line)
        if m:
            passed += int(m[1])
            failed += int(m[2])
            ignored += int(m[3])
    return f"total: {passed} passed, {failed} failed, {ignored} skipped"


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8", errors="replace") as f:
        print(total(f))

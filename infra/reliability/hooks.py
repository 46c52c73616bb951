"""schemathesis hooks (loaded with SCHEMATHESIS_HOOKS=reliability.hooks).

Unique Idempotency-Key values: schemathesis' coverage phase reuses the same few values
("0", "000…") across different requests, so without this most write requests stop at
409 idempotency_key_mismatch and never reach validation. Two of three plainly valid keys
get a unique suffix (still valid); invalid ones and every third valid one go out as
generated, so replay and mismatch stay exercised."""

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

"""Pure helpers shared by the reliability modules: standard library only, so that
`python3 -m unittest` (infra/lint.sh) can test them without the project's virtualenv."""

import base64
import json
import shlex
from urllib.parse import unquote

# Request headers a reproduction command leaves out: the client adds its own.
_CLIENT_HEADERS = ("user-agent", "accept-encoding", "accept", "connection", "content-length")


def template_of(path):
    """The documented path template a request path falls under, with its parameters, or
    (None, {}) when it matches none."""
    segs = path.split("?", 1)[0].split("/")
    if segs[:3] != ["", "v1", "integrations"]:
        return None, {}
    if len(segs) == 3:
        return "/v1/integrations", {}
    name = unquote(segs[3])
    if len(segs) == 4 and name:
        return "/v1/integrations/{connector}", {"connector": name}
    if len(segs) == 5 and name and segs[4] in ("credentials", "restore"):
        return "/v1/integrations/{connector_type}/" + segs[4], {"connector_type": name}
    return None, {}


def clip(value, n=300):
    """Bytes or text cut to n (with the full length noted), for the reports."""
    if isinstance(value, (bytes, bytearray)):
        text = bytes(value[:n]).decode("utf-8", "replace")
        return text + (f"…({len(value)} bytes)" if len(value) > n else "")
    if isinstance(value, str) and len(value) > n:
        return value[:n] + f"…({len(value)} chars)"
    return value


def jb(obj):
    """obj as a JSON body."""
    return json.dumps(obj).encode()


def padded(total):
    """A JSON object of exactly `total` bytes."""
    skeleton = len(jb({"config": {"pad": ""}}))
    return jb({"config": {"pad": "a" * (total - skeleton)}})


def decode(blob):
    """A body as schemathesis' reports store it ({"$base64": …}, {"string": …}) as bytes."""
    if not blob:
        return b""
    if isinstance(blob, dict) and "$base64" in blob:
        return base64.b64decode(blob["$base64"])
    if isinstance(blob, dict) and "string" in blob:
        return blob["string"].encode()
    return str(blob).encode()


def curl(request):
    """A curl command reproducing a request (method, uri, headers, body as in decode)."""
    parts = ["curl", "-i", "-X", request["method"], shlex.quote(request["uri"])]
    for name, values in request.get("headers", {}).items():
        if name.lower() in _CLIENT_HEADERS:
            continue
        for v in values if isinstance(values, list) else [values]:
            parts += ["-H", shlex.quote(f"{name}: {v}")]
    body = decode(request.get("body"))
    if body:
        parts += ["--data-binary", shlex.quote(body.decode("utf-8", "surrogateescape"))]
    return " ".join(parts)


def failure_signature(failure):
    """Failures with the same checks, operation, status and error code count as one."""
    try:
        code = json.loads(failure.get("response") or "{}").get("code")
    except (ValueError, AttributeError):
        code = None
    return (tuple(sorted(failure["checks"])), failure["operation"], failure.get("status"), code)

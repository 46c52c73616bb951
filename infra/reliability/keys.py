"""Mints the run's API keys with connectors-admin and writes them, with eight fresh secret
canaries (credential values the seed stores; no response may contain them), as
{"canaries": [...], "<set>": {"<role>": key, ...}, ...}.

A fresh entity per key set (a row one run breaks must not fail the next): `main`,
`test-key` and `hostile` get a live and a test key with every scope; `hostile` also a
read-only, a read-and-write and a revoked key; `other` (another tenant) and `poison` (an
entity of its own for bodies that might break rows) a live one.

Usage: python -m reliability.keys CONNECTORS_ADMIN KEYS_JSON"""

import json
import subprocess
import sys
import uuid

ALL = ["integrations:read", "integrations:write", "integrations:credentials", "integrations:purge"]


def key_plan():
    """(set, role, scopes, live, revoke) for every key, one entity per set."""
    plan = []
    for name in ("main", "test-key", "hostile"):
        plan += [(name, "live", ALL, True, False), (name, "test", ALL, False, False)]
    plan += [("hostile", "read_only", ALL[:1], True, False), ("hostile", "write_only", ALL[:2], True, False),
             ("hostile", "revoked", ALL, True, True),
             ("other", "live", ALL, True, False), ("poison", "live", ALL, True, False)]
    return plan


def key_id(key):
    """`key_<code>` of `ark_<mode>_ent_<code>_<random>`."""
    return "key_" + key.split("_")[3]


def main(admin, path):
    def run(*args):
        return subprocess.run([admin, *args], check=True, capture_output=True, text=True).stdout

    keys = {"canaries": ["canary-" + uuid.uuid4().hex for _ in range(8)]}
    entities = {}
    for name, role, scopes, live, revoke in key_plan():
        entity = entities.setdefault(name, str(uuid.uuid4()))
        args = ["keys", "create", "--entity", entity] + [a for s in scopes for a in ("--scope", s)]
        key = run(*args, *(["--live"] if live else [])).strip().splitlines()[-1]
        if revoke:
            run("keys", "revoke", key_id(key))
        keys.setdefault(name, {})[role] = key
    with open(path, "w") as f:
        json.dump(keys, f)


if __name__ == "__main__":
    main(*sys.argv[1:3])

"""Rows for GET/PATCH/credentials/restore/DELETE to find, re-created before each run on
the entity of one key set: live rows (some with credentials, some disconnected) and test
rows. The credential values are the keys file's canaries. A 5xx while seeding is a
finding too: it goes to seed-errors.txt, which the summary counts.

For the `hostile` set it also records in the keys file the live stripe row's id and a
row of another entity (`other_entity_row_id`).

Usage: python -m reliability.seed BASE_URL KEYS_JSON GROUP"""

import json
import os
import sys

import requests

# type -> (connect body, credentials body or None, disconnect afterwards); `c` is the
# list of canaries.
def live_rows(c):
    return {
        "stripe": ({"display_name": "Payments", "config": {"statement_descriptor": "ACME"}},
                   {"credentials": {"secret_key": c[0], "publishable_key": "pk_test_1"}, "webhook_secret": c[1]},
                   False),
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


def test_rows(c):
    return {
        "postmark": ({}, {"credentials": {"server_token": c[7]}}, False),
        "printnode": ({"config": {"printer": 1}}, None, True),
        "mapquest": ({}, None, False),
    }


def main(base, path, group):
    with open(path) as f:
        all_keys = json.load(f)
    keys = all_keys[group]
    canaries = all_keys["canaries"]
    api = base + "/v1/integrations/"
    errors_path = os.path.join(os.path.dirname(path), "..", "seed-errors.txt")

    def call(key, method, ref, body=None):
        r = requests.request(method, api + ref, json=body, timeout=30,
                             headers={"Authorization": f"Bearer {keys[key]}"})
        if r.status_code >= 500:
            with open(errors_path, "a") as f:
                f.write(json.dumps({"method": method, "ref": ref, "status": r.status_code,
                                    "body": r.text[:600]}) + "\n")
        return r

    def connect(key, ctype, body=None):
        r = call(key, "POST", ctype, body or {})
        if r.status_code == 409:
            call(key, "POST", ctype + "/restore")
        r = call(key, "GET", ctype)
        return r.json()["data"]["id"] if r.status_code == 200 else None

    for key, rows in (("live", live_rows(canaries)), ("test", test_rows(canaries))):
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
    with open(path, "w") as f:
        json.dump(all_keys, f)


if __name__ == "__main__":
    main(*sys.argv[1:4])

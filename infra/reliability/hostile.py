"""Hand-written hostile requests the generator does not produce, sent to the dev server
over a real socket and checked like schemathesis' cases (wire.py).

What is here: what only a real HTTP server sees (raw and odd paths, an 8 kB request line,
non-UTF-8 header bytes, HEAD and extension methods, bodies cut off by the dev server's
read limit, concurrent bursts on separate connections), plus the cases no Rust test
sends. Cases that shared/tests/integration/hostile_input.rs or core_api.rs send with
the same status and error envelope are not repeated here; each group's comment names
the test that covers what was dropped (docs/RELIABILITY.md, "Hostile input").

Usage: python -m reliability.hostile OPENAPI BASE_URL KEYS_JSON OUT_NDJSON
(EMULATOR_LOG: the emulator's log, read to tell its own 500s during bursts.)"""

import json
import os
import sys
import uuid

from .helpers import clip, jb, padded
from .wire import Wire


def main(spec, base, keys_path, out_path):
    with open(keys_path) as f:
        all_keys = json.load(f)
    keys = {**all_keys["hostile"], "poison": all_keys["poison"]["live"]}
    with open(out_path, "w") as out:
        wire = Wire(spec, base, all_keys["canaries"], out)
        faults = Bursts(wire, os.environ.get("EMULATOR_LOG", ""))
        cases(wire, faults, keys)
    # Rewritten from `results`: bursts may have re-judged their entries after the fact.
    with open(out_path, "w") as out:
        for entry in wire.results:
            out.write(json.dumps(entry) + "\n")
    print(json.dumps({"cases": len(wire.results), "failed": sum(1 for r in wire.results if r["failures"]),
                      "emulator_faults": faults.emulator_faults}))


def cases(wire, bursts, keys):
    send = wire.send

    def auth(name):
        return {"Authorization": f"Bearer {keys[name]}"}

    J = {"Content-Type": "application/json"}
    A = auth("live")
    L = {**A, **J}

    # -- oversized bodies (the cap is 64 KiB). connectors-dev reads at most 64 KiB + 1
    #    from the socket: the exact limit, one byte past it and a body cut off mid-stream
    #    test that reader. Covered in Rust, dropped here: 1 MiB of whitespace on PUT
    #    credentials (bodies_over_64_kib_are_413_on_every_write_route), 70 kB of '['
    #    (deep_nesting_is_400_without_a_crash), display_name of 257 characters
    #    (control_characters_in_text_fields_are_400_and_other_unicode_is_kept). --
    send("oversized", "DELETE", "/v1/integrations/shopify?permanent=true", headers=A, expect={204, 404})
    send("oversized", "POST", "/v1/integrations/shopify", headers=L, body=padded(65536), expect={201},
         note="exactly 64 KiB")
    send("oversized", "PATCH", "/v1/integrations/shopify", headers=L, body=padded(65537), expect={413},
         note="64 KiB + 1 byte")
    send("oversized", "PATCH", "/v1/integrations/shopify", headers=L, body=padded(1 << 20), expect={413},
         note="1 MiB")
    # The 64 KiB cap holds on every route, including those that read no body.
    send("oversized", "POST", "/v1/integrations/shopify/restore", headers=L, body=padded(65537), expect={413},
         note="restore with a 64 KiB + 1 body")
    send("oversized", "GET", "/v1/integrations", headers=L, body=b"x" * 70000, expect={413},
         note="GET with a 70 kB body")
    send("oversized", "PUT", "/v1/integrations/shopify/credentials", headers=L,
         body=jb({"credentials": {"access_token": "x" * 5000}}), expect={400, 422}, note="credential value of 5000 chars")
    send("oversized", "PATCH", "/v1/integrations/shopify", headers=L,
         body=jb({"config": {f"k{i}": i for i in range(4000)}}), expect={200}, note="config with 4000 keys (under 64 KiB)")

    # -- media types. Covered in Rust, dropped here (wrong_content_types_are_415_and_json_
    #    variants_are_accepted): text/plain, application/xml, application/jsonx,
    #    multipart, form-urlencoded, text/json, an empty value and no Content-Type are 415; charset=utf-8, APPLICATION/JSON and
    #    application/*+json are read. --
    for ct, exp in [("*/*", {415}), ("application/json, text/plain", {200, 415})]:
        send("media_type", "PATCH", "/v1/integrations/shopify", headers={**A, "Content-Type": ct},
             body=b'{"display_name":"Shop"}', expect=exp, note=f"Content-Type {ct!r}")

    # -- JSON that parses but is not an object, and values no Rust test sends. Covered in
    #    Rust, dropped here: truncated JSON, trailing garbage, invalid UTF-8, a lone
    #    surrogate escape, a raw NUL, a BOM, 1e999999 (bodies_that_are_not_valid_utf8_json_
    #    are_400_and_store_nothing); duplicate keys, escaped or not (duplicated_json_keys_
    #    are_400_naming_the_key_never_the_value); arrays nested 200 deep (deep_nesting_is_
    #    400_without_a_crash); an escaped NUL, a control character or only blanks in
    #    display_name, a bidi override kept (control_characters_in_text_fields_are_400_and_
    #    other_unicode_is_kept); entity_id in the body (core_api.rs secrets_and_entity_id_
    #    in_a_connect_body_are_422_and_nothing_is_stored, the same parser as PATCH). --
    for body, exp, note in [
        (b"[]", {400, 422}, "array"), (b"null", {200, 400, 422}, "null"),
        (b'"str"', {400, 422}, "string"), (b"123", {400, 422}, "number"),
        (b'{"config":{"s":"","l":[],"m":{},"z":null,"nul":"\\u0000"}}', {200, 400, 422}, "empty and NUL values"),
        (b'{"config":{"API_KEY":"x"}}', {422}, "secret-looking config key, upper case"),
        (b'{"config":{"a":[{"b":{"Access_Token":"x"}}]}}', {422}, "secret name inside an array"),
        (b'{"is_active":"false"}', {400, 422}, "is_active as a string"),
        (b'{"mode":"LIVE"}', {400, 422}, "mode in upper case"),
        (b'{"bank_account_id":"not-a-uuid"}', {400, 422}, "bad uuid"),
        (b'{"bank_account_id":"3C90C3CC0D444B5088888DD25736052A"}', {200, 400, 422}, "uuid without hyphens"),
        (b'{"ship_from_zip":""}', {400, 422}, "empty ship_from_zip"),
    ]:
        send("json", "PATCH", "/v1/integrations/shopify", headers=L, body=body, expect=exp, note=note)

    # -- bodies the row store might not take back: numbers at DynamoDB's limits and odd
    #    map keys, on an entity of their own, with a read-back after each, so a row that
    #    cannot be read again shows up here and spoils nothing else. Covered in Rust,
    #    dropped here: 32 and 33 levels of nesting and deeper (deep_nesting_is_400_without_
    #    a_crash, with the read-back), -1.8e308, beyond f64 and so not JSON this service
    #    reads (bodies_that_are_not_valid_utf8_json_are_400_and_store_nothing, with 1e400),
    #    {"": 1} on connect (an_empty_config_key_is_refused_and_cannot_
    #    poison_the_entity). --
    P = {**auth("poison"), **J}
    for ctype, cfg in [("shippo", b'{"n":1e126}'), ("postmark", b'{"n":1e-131}'),
                       ("shopify", b'{"n":-0.0,"m":1e-400}'),
                       ("stripe", b'{"n":123456789012345678901234567890123456789012345}'),
                       ("google", b'{"a":{"":{"b":1}}}'), ("usps", b'{" ":1,"\\u0000":2}'),
                       ("ebay", b'{"a":[{"":1}]}')]:
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
    send("store_roundtrip", "DELETE", "/v1/integrations/mapquest?permanent=true", headers=auth("poison"),
         expect={204}, note="purge the edited row")

    # -- raw paths as the client sends them. Covered in Rust, dropped here (hostile_path_
    #    segments_are_400_or_404_never_5xx): STRIPE, stripe%00, %ff, %2e%2e, ..%2f
    #    traversal, //stripe, stripe/credentials/x. --
    for path, exp in [
        ("/v1/integrations/stripe%2fcredentials", {400, 404}), ("/v1/integrations/", {200, 400, 404}),
        ("/v1/integrations/stripe/", {200, 400, 404}), ("/v1/integrations/" + "a" * 8000, {400, 404, 414}),
        ("/v1/integrations/" + str(uuid.uuid4()).upper(), {400, 404}),
        ("/v1/integrations/" + uuid.uuid4().hex, {400, 404}),
        ("/v1/integrations/%20stripe", {400, 404}), ("/v1/integrations/stripe/unknown", {404}),
        ("/v1/Integrations", {404}), ("/v2/integrations", {404}), ("/", {404}), ("/v1", {404}),
        ("/v1/integrations.json", {400, 404}),
    ]:
        send("paths", "GET", path, headers=A, expect=exp)

    # -- methods: HEAD, OPTIONS, TRACE and an extension method over the wire, and the
    #    405s no Rust test asks for. Covered in Rust, dropped here: POST on the collection
    #    (core_api.rs unknown_routes_wrong_methods_and_bad_bodies_get_the_envelope: 405
    #    with Allow: GET). --
    for method, path, exp in [
        ("PUT", "/v1/integrations/stripe", {405}), ("GET", "/v1/integrations/stripe/credentials", {405}),
        ("DELETE", "/v1/integrations/stripe/restore", {405}), ("DELETE", "/v1/integrations", {405}),
        ("PATCH", "/v1/integrations", {405}), ("OPTIONS", "/v1/integrations", {200, 204, 405}),
        ("HEAD", "/v1/integrations", {200, 405}),
        ("TRACE", "/v1/integrations/stripe", {405}), ("FOO", "/v1/integrations/stripe", {400, 405}),
    ]:
        send("methods", method, path, headers=A, expect=exp)

    # -- query strings. Covered in Rust, dropped here: limit=0, 101, -1, 1e2, 20 digits,
    #    repeated, empty or %ff; is_active=1; mode=LIVE; limit[]; an unknown parameter;
    #    starting_after=x; a cursor naming an existing row, either way (junk_query_strings_
    #    are_400_and_change_nothing; core_api.rs list_is_newest_first_with_cursors_and_filters);
    #    permanent=yes and a repeated permanent (junk_query_strings_are_400_and_change_
    #    nothing). --
    for q, exp in [
        ("limit=%20", {400}), ("is_active=TRUE", {200, 400}),
        (f"starting_after={uuid.uuid4()}&ending_before={uuid.uuid4()}", {400}), ("%zz=1", {400}),
        ("limit=10&", {200, 400}), ("&&&", {200, 400}), ("limit=5;is_active=true", {400}),
        ("=", {200, 400}), ("mode", {400}), ("is_active=true&mode=sandbox&limit=100", {200}),
    ]:
        send("query", "GET", "/v1/integrations?" + q, headers=A, expect=exp)
    for q, exp in [("permanent=TRUE", {200, 204, 400, 404}), ("permanent=", {400})]:
        send("query", "DELETE", "/v1/integrations/google?" + q, headers=A, expect=exp)

    # -- Idempotency-Key. Covered in Rust, dropped here: a non-ASCII key (a_non_ascii_
    #    idempotency_key_is_refused_not_ignored). --
    idk = "fuzz-" + uuid.uuid4().hex
    send("idempotency", "DELETE", "/v1/integrations/fedex?permanent=true", headers=A, expect={204, 404})
    send("idempotency", "POST", "/v1/integrations/fedex", headers={**L, "Idempotency-Key": idk}, body=b"{}",
         expect={201})
    r = send("idempotency", "POST", "/v1/integrations/fedex", headers={**L, "Idempotency-Key": idk}, body=b"{}",
             expect={201}, note="replay")
    if r is not None and r.headers.get("idempotent-replayed") != "true":
        wire.fail_last("replay without idempotent-replayed: true")
    send("idempotency", "POST", "/v1/integrations/fedex", headers={**L, "Idempotency-Key": idk},
         body=b'{"display_name":"x"}', expect={409}, note="same key, another body")
    send("idempotency", "PATCH", "/v1/integrations/fedex", headers={**L, "Idempotency-Key": idk}, body=b"{}",
         expect={409}, note="same key, another operation")
    for value, exp in [("k" * 256, {400}), ("k" * 255, {200}), ("", {400}), ("a\tb", {200, 400})]:
        send("idempotency", "PATCH", "/v1/integrations/fedex", headers={**L, "Idempotency-Key": value},
             body=b'{"seller_id":"s1"}', expect=exp, note=f"Idempotency-Key {clip(value, 12)!r}")

    # -- authentication (one check for every route, so each value is sent to three).
    #    Raw latin-1 bytes reach the server only over the wire. Covered in Rust, dropped
    #    here (junk_authorization_headers_are_401_and_store_nothing, a_tolerated_
    #    authorization_spelling_still_authenticates; core_api.rs authentication_failures_
    #    are_401_with_the_right_code): no header, blank, `Bearer` alone or with blanks,
    #    Basic/Token with the key, the key ±1 character, a well-formed unknown key, an 8 kB
    #    token, two credentials, a revoked key, non-key text (injection- or path-looking),
    #    and the tolerated spellings (scheme case, extra spaces). --
    for value, note in [
        ("Bearer ark_live_ent_", "prefix only"),
        ("Bearer \xff\xfe\xfd".encode("latin-1"), "latin-1 bytes"),
    ]:
        for method, path, body in [("GET", "/v1/integrations", None), ("POST", "/v1/integrations/ups", b"{}"),
                                   ("DELETE", "/v1/integrations/ups?permanent=true", None)]:
            send("auth", method, path, headers={"Authorization": value, **(J if body else {})}, body=body,
                 expect={401}, note=note)

    # -- test keys and tenants. Scopes are covered in Rust, dropped here (core_api.rs
    #    each_route_needs_its_scope: read-only and purge-less keys); so are a test key
    #    reading a live row by type or id or asking for live mode (test_keys_see_and_
    #    change_only_sandbox_rows) and reading another entity's row by id (another_
    #    entitys_rows_do_not_exist_for_you). --
    T = {**auth("test"), **J}
    send("tenancy", "PATCH", "/v1/integrations/stripe", headers=T, body=b'{"display_name":"x"}', expect={404})
    send("tenancy", "DELETE", "/v1/integrations/stripe?permanent=true", headers=auth("test"), expect={404})
    send("tenancy", "POST", "/v1/integrations/stripe/restore", headers=auth("test"), expect={404})
    send("tenancy", "PUT", "/v1/integrations/stripe/credentials", headers=T,
         body=b'{"credentials":{"secret_key":"sk_x"}}', expect={404})
    send("tenancy", "DELETE", f"/v1/integrations/{keys['other_entity_row_id']}?permanent=true", headers=A,
         expect={404}, note="purge another entity's row by id")

    # -- concurrent bursts, each request on its own connection --
    send("concurrency", "DELETE", "/v1/integrations/ebay?permanent=true", headers=A, expect={204, 404})
    rs = bursts.run(12, "POST", "/v1/integrations/ebay", L, [b"{}"] * 12, {201, 409}, "12 parallel connects")
    if sum(1 for r in rs if r is not None and r.status_code == 201) != 1:
        wire.fail_last("12 parallel connects: not exactly one 201")
    bursts.run(12, "PATCH", "/v1/integrations/ebay", L,
               [jb({"display_name": f"n{i}", "config": {"i": i}}) for i in range(12)], {200, 409}, "12 parallel edits")
    bursts.run(8, "PUT", "/v1/integrations/ebay/credentials", L,
               [jb({"credentials": {"client_id": f"id{i}", "client_secret": f"s{i}", "refresh_token": f"r{i}"}})
                for i in range(8)], {200, 409}, "8 parallel credential writes")
    bursts.run(8, "DELETE", "/v1/integrations/ebay", A, [None] * 8, {200, 409}, "8 parallel disconnects")
    bursts.run(8, "POST", "/v1/integrations/ebay/restore", A, [None] * 8, {200, 409}, "8 parallel restores")
    k2 = "fuzz-" + uuid.uuid4().hex
    send("concurrency", "DELETE", "/v1/integrations/amazon?permanent=true", headers=A, expect={204, 404})
    bursts.run(10, "POST", "/v1/integrations/amazon", {**L, "Idempotency-Key": k2}, [b"{}"] * 10, {201, 409},
               "10 parallel connects with one Idempotency-Key")
    bursts.run(10, "DELETE", "/v1/integrations/amazon?permanent=true", A, [None] * 10, {204, 404, 409},
               "10 parallel purges")


class Bursts:
    """Concurrent bursts, with the emulator's own faults told apart.

    moto is not thread-safe: concurrent transactions can make it answer 500 ("dictionary
    changed size during iteration"), which DynamoDB never does. The service's documented
    answer to a failing dependency is 503 + Retry-After: that is accepted, only when the
    emulator's own log shows 500s during the burst, and counted in the summary."""

    def __init__(self, wire, emulator_log):
        self.wire = wire
        self.emulator_log = emulator_log
        self.emulator_faults = 0

    def emulator_500s(self):
        try:
            with open(self.emulator_log, errors="replace") as f:
                return sum(1 for line in f if '" 500 -' in line)
        except OSError:
            return None

    def run(self, n, method, path, headers, bodies, expect, note):
        before = self.emulator_500s()
        first = len(self.wire.results)
        responses = self.wire.burst(n, method, path, headers, bodies, expect, note)
        after = self.emulator_500s()
        if before is not None and after is not None and after > before:
            for entry in self.wire.results[first:]:
                headers_ = {k.lower(): v for k, v in (entry["response_headers"] or {}).items()}
                if entry["status"] == 503 and headers_.get("retry-after"):
                    kept = [f for f in entry["failures"] if f["check"] not in ("expected_status", "not_a_server_error")]
                    if kept != entry["failures"]:
                        entry["failures"] = kept
                        entry["note"] += "; 503 after the emulator answered 500 (moto is not thread-safe)"
                        self.emulator_faults += 1
        return responses


if __name__ == "__main__":
    main(*sys.argv[1:5])

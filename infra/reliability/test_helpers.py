"""Unit tests of the pure helpers (standard library only): run by infra/lint.sh as
`python3 -m unittest discover -s infra -p 'test_*.py'`."""

import json
import unittest

from reliability.helpers import clip, curl, decode, failure_signature, padded, template_of
from reliability.keys import key_id, key_plan
from totals import total


class TemplateOf(unittest.TestCase):
    def test_documented_paths(self):
        self.assertEqual(template_of("/v1/integrations?limit=1"), ("/v1/integrations", {}))
        self.assertEqual(template_of("/v1/integrations/stripe"),
                         ("/v1/integrations/{connector}", {"connector": "stripe"}))
        self.assertEqual(template_of("/v1/integrations/st%20ripe/credentials"),
                         ("/v1/integrations/{connector_type}/credentials", {"connector_type": "st ripe"}))

    def test_undocumented_paths(self):
        for path in ("/", "/v1", "/v1/integrations/", "/v1/integrations//x", "/v1/integrations/a/b",
                     "/v1/integrations/a/credentials/x", "/v2/integrations"):
            self.assertEqual(template_of(path), (None, {}), path)


class Bodies(unittest.TestCase):
    def test_padded_is_exactly_the_size_asked(self):
        for n in (30, 65536, 65537):
            body = padded(n)
            self.assertEqual(len(body), n)
            json.loads(body)

    def test_clip(self):
        self.assertEqual(clip("abc"), "abc")
        self.assertEqual(clip("abcd", 2), "ab…(4 chars)")
        self.assertEqual(clip(b"\xffab", 2), "\ufffda…(3 bytes)")
        self.assertIsNone(clip(None))


class Reports(unittest.TestCase):
    def test_decode(self):
        self.assertEqual(decode(None), b"")
        self.assertEqual(decode({"$base64": "AP8="}), b"\x00\xff")
        self.assertEqual(decode({"string": "é"}), "é".encode())

    def test_curl_quotes_and_skips_client_headers(self):
        cmd = curl({"method": "POST", "uri": "http://h/v1/integrations/x y",
                    "headers": {"User-Agent": ["x"], "Authorization": ["Bearer k"]},
                    "body": {"string": "{'a'}"}})
        self.assertEqual(cmd, "curl -i -X POST 'http://h/v1/integrations/x y' -H 'Authorization: Bearer k' "
                              "--data-binary '{'\"'\"'a'\"'\"'}'")

    def test_failure_signature(self):
        f = {"checks": {"b": "", "a": ""}, "operation": "GET /v1/integrations", "status": 400,
             "response": '{"code": "validation_error"}'}
        self.assertEqual(failure_signature(f), (("a", "b"), "GET /v1/integrations", 400, "validation_error"))
        self.assertIsNone(failure_signature({**f, "response": "[1]"})[3])
        self.assertIsNone(failure_signature({**f, "response": "not json"})[3])


class Keys(unittest.TestCase):
    def test_plan(self):
        plan = {(name, role): (len(scopes), live, revoke) for name, role, scopes, live, revoke in key_plan()}
        self.assertEqual(plan[("hostile", "revoked")], (4, True, True))
        self.assertEqual(plan[("hostile", "read_only")], (1, True, False))
        self.assertEqual(plan[("test-key", "test")], (4, False, False))
        self.assertEqual(sorted({name for name, _ in plan}), ["hostile", "main", "other", "poison", "test-key"])

    def test_key_id(self):
        self.assertEqual(key_id("ark_live_ent_abcdefghij12_0123456789"), "key_abcdefghij12")


class TestTotal(unittest.TestCase):
    def test_sums_every_result_line(self):
        log = ["test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured\n", "noise\n",
               "test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured\n"]
        self.assertEqual(total(log), "total: 5 passed, 1 failed, 1 skipped")


if __name__ == "__main__":
    unittest.main()

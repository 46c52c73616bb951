"""Unit tests of infra/scan.py's pure parts: skip matching, the report's verdict, and the
resolver that turns a translated stack's policies into concrete documents. Standard
library only (`python3 -m unittest discover -s infra -p 'test_*.py'`)."""

import contextlib
import io
import unittest

import scan

TEMPLATE = {
    "Parameters": {"Stage": {"Type": "String"}, "Readers": {"Type": "CommaDelimitedList", "Default": ""}},
    "Conditions": {"HasReaders": {"Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "Readers"}]}, ""]}]}},
    "Resources": {
        "Table": {"Type": "AWS::DynamoDB::Table", "Properties": {"TableName": {"Fn::Sub": "connectors-${Stage}"}}},
        "Role": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "Policies": [{"PolicyName": "P", "PolicyDocument": {"Version": "2012-10-17", "Statement": [
                    {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": [
                        {"Fn::GetAtt": ["Table", "Arn"]}, {"Fn::Sub": "${Table.Arn}/index/due"}]},
                    {"Fn::If": ["HasReaders", {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*",
                                               "Principal": {"AWS": {"Ref": "Readers"}}}, {"Ref": "AWS::NoValue"}]},
                ]}}],
            },
        },
    },
}


def finding(rule, resource):
    return scan.Finding("t", rule, resource, "here", "message")


class Skips(unittest.TestCase):
    skips = [{"rule": "R1", "resources": ["Get*", "Table"], "reason": "why"}]

    def test_a_skip_covers_its_rule_on_its_resources_only(self):
        self.assertIsNotNone(scan.covering(finding("R1", "GetFunction"), self.skips))
        self.assertIsNone(scan.covering(finding("R1", "ListFunction"), self.skips))
        self.assertIsNone(scan.covering(finding("R2", "Table"), self.skips))
        self.assertIsNone(scan.covering(finding("R1", None), self.skips))

    def verdict(self, findings, skips):
        with contextlib.redirect_stdout(io.StringIO()) as out:
            status = scan.report("t", findings, skips)
        return status, out.getvalue()

    def test_covered_findings_pass_uncovered_fail(self):
        self.assertEqual(self.verdict([finding("R1", "Table")], self.skips)[0], 0)
        status, out = self.verdict([finding("R1", "Table"), finding("R9", "Table")], self.skips)
        self.assertEqual(status, 1)
        self.assertIn("FINDING R9", out)

    def test_a_skip_matching_nothing_fails(self):
        status, out = self.verdict([], self.skips)
        self.assertEqual(status, 1)
        self.assertIn("STALE SKIP R1", out)


class Resolving(unittest.TestCase):
    def documents(self, readers):
        parameters = {"Stage": "dev", "Readers": readers}
        return list(scan.policy_documents(TEMPLATE, parameters))

    def test_references_become_concrete_arns(self):
        [(logical_id, where, document)] = self.documents([""])
        self.assertEqual((logical_id, where), ("Role", "Policies/P"))
        self.assertEqual(document["Statement"], [{"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": [
            "arn:aws:dynamodb:us-east-1:123456789012:table/connectors-dev",
            "arn:aws:dynamodb:us-east-1:123456789012:table/connectors-dev/index/due"]}])

    def test_conditional_statements_follow_the_parameters(self):
        [(_, _, document)] = self.documents(["arn:aws:iam::123456789012:role/reader"])
        self.assertEqual(document["Statement"][1]["Principal"], {"AWS": ["arn:aws:iam::123456789012:role/reader"]})


if __name__ == "__main__":
    unittest.main()

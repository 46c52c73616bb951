"""The stack each stage deploys, as SAM translates template.yaml (offline), checked the
way an on-call engineer and a security reviewer would; and each check shown to fail on a
mistake planted in the template. Run by `make test` (infra/test.sh) with .venv-sam's
Python: `python -m unittest discover -s infra/stack -p 'test_*.py'`."""

import copy
import re
import unittest

import checks
from checks import STAGES
from translate import load_template, samconfig_parameters, translate

TOPIC = "arn:aws:sns:us-east-1:123456789012:on-call"
READER = "arn:aws:iam::123456789012:role/erp-sync-worker"


def parameters(stage, **extra):
    """samconfig.toml's values for the stage, with a topic for prod (which requires one)."""
    values = samconfig_parameters(stage)
    if stage == "prod":
        values["AlarmTopicArn"] = TOPIC
    values.update(extra)
    return values


_cache = {}


def deployed(stage, template=None, **extra):
    """The translated stack of a stage, with its parameter values."""
    key = (stage, tuple(sorted(extra.items())))
    if template is None and key in _cache:
        return _cache[key]
    values = parameters(stage, **extra)
    s = checks.stack(translate(template or load_template(), values), values)
    if template is None:
        _cache[key] = s
    return s


def key_schema():
    """The table's keys as template.yaml writes them (the Rust test
    template::the_table_matches_the_one_definition holds those to the code)."""
    p = load_template()["Resources"]["ConnectorsTable"]["Properties"]
    kinds = lambda schema: {k["KeyType"]: k["AttributeName"] for k in schema}
    return {
        "keys": kinds(p["KeySchema"]),
        "indexes": {i["IndexName"]: kinds(i["KeySchema"]) for i in p["GlobalSecondaryIndexes"]},
        "ttl": p["TimeToLiveSpecification"]["AttributeName"],
    }


def planted(mutate):
    """template.yaml with one mistake planted by `mutate(template)`."""
    t = copy.deepcopy(load_template())
    mutate(t)
    return t


class StageIsolation(unittest.TestCase):
    def test_every_physical_name_carries_its_stage(self):
        for stage in STAGES:
            with self.subTest(stage=stage):
                self.assertEqual(checks.isolation_problems(deployed(stage), stage), [])

    def test_the_two_stages_share_no_physical_name(self):
        dev, prod = (set(checks.physical_names(deployed(s)).values()) for s in STAGES)
        self.assertGreaterEqual(len(dev), 20)
        self.assertEqual(len(dev), len(prod))
        self.assertEqual(dev & prod, set())

    def test_a_name_without_the_stage_fails(self):
        t = planted(lambda t: t["Resources"]["EventBus"]["Properties"].update(Name="integrations"))
        problems = checks.isolation_problems(deployed("dev", t), "dev")
        self.assertTrue(any("EventBus" in p for p in problems), problems)
        dev, prod = (set(checks.physical_names(deployed(s, t)).values()) for s in STAGES)
        self.assertEqual(dev & prod, {"integrations"})

    def test_a_fixed_alarm_name_fails(self):
        t = planted(lambda t: t["Resources"]["BadItemsAlarm"]["Properties"].update(AlarmName="bad-items"))
        self.assertTrue(checks.isolation_problems(deployed("dev", t), "dev"))

    def test_stage_has_no_default_and_each_samconfig_environment_sets_its_own(self):
        self.assertNotIn("Default", load_template()["Parameters"]["Stage"])
        self.assertEqual(samconfig_parameters("dev")["Stage"], "dev")
        self.assertEqual(samconfig_parameters("prod")["Stage"], "prod")
        # A bare `sam deploy` is exactly dev.
        self.assertEqual(samconfig_parameters("default"), samconfig_parameters("dev"))


class AlarmsPage(unittest.TestCase):
    def test_prod_refuses_to_deploy_without_an_alarm_topic(self):
        t = load_template()
        self.assertEqual(checks.rule_failures(t, {"Stage": "prod", "AlarmTopicArn": ""}),
                         ["ProdAlarmsReachSomeone: A prod stack needs AlarmTopicArn, the SNS topic its alarms notify."])
        self.assertEqual(checks.rule_failures(t, {"Stage": "prod", "AlarmTopicArn": TOPIC}), [])
        self.assertEqual(checks.rule_failures(t, {"Stage": "dev", "AlarmTopicArn": ""}), [])
        self.assertEqual(checks.rule_failures(t, {"Stage": "dev", "AlarmTopicArn": TOPIC}), [])
        # samconfig's prod environment leaves the topic to fill in: as written it is refused.
        self.assertTrue(checks.rule_failures(t, samconfig_parameters("prod")))

    def test_every_alarm_notifies_the_topic_when_there_is_one(self):
        self.assertEqual(checks.alarm_actions_problems(deployed("prod"), TOPIC), [])
        self.assertEqual(checks.alarm_actions_problems(deployed("dev", AlarmTopicArn=TOPIC), TOPIC), [])
        self.assertEqual(checks.alarm_actions_problems(deployed("dev"), ""), [])

    def test_no_alarm_outside_the_expected_list(self):
        for stage in STAGES:
            self.assertEqual(checks.unexpected_alarms(deployed(stage), stage), [])

    def test_an_alarm_on_the_wrong_metric_fails(self):
        t = planted(lambda t: t["Resources"]["SweeperHeartbeatAlarm"]["Properties"].update(MetricName="Errors"))
        self.assertEqual(checks.alarm_problems(deployed("dev", t), "dev", "SweeperHeartbeatAlarm"),
                         ["SweeperHeartbeatAlarm: metric is 'Errors', want 'Invocations'"])

    def test_a_heartbeat_that_ignores_missing_data_fails(self):
        t = planted(lambda t: t["Resources"]["SweeperHeartbeatAlarm"]["Properties"].update(TreatMissingData="notBreaching"))
        self.assertTrue(checks.alarm_problems(deployed("dev", t), "dev", "SweeperHeartbeatAlarm"))

    def test_sync_reports_reach_the_sync_function_from_other_sources_only(self):
        for stage in STAGES:
            self.assertEqual(checks.sync_rule_problems(deployed(stage)), [])

    def test_a_sync_rule_that_takes_the_service_s_own_events_fails(self):
        def mutate(t):
            pattern = t["Resources"]["SyncFunction"]["Properties"]["Events"]["SyncReported"]["Properties"]["Pattern"]
            pattern.pop("source")
        self.assertEqual(checks.sync_rule_problems(deployed("dev", planted(mutate))),
                         ["SyncFunctionSyncReported matches source None, want anything but 'erp.integrations'"])

    def test_a_5xx_alarm_on_another_stage_s_metrics_fails(self):
        t = planted(lambda t: t["Resources"]["GetFunctionServerErrorsAlarm"]["Properties"].update(Namespace="Connectors"))
        self.assertTrue(checks.alarm_problems(deployed("prod", t), "prod", "GetFunctionServerErrorsAlarm"))


def _alarm_test(logical_id):
    def test(self):
        for stage in STAGES:
            with self.subTest(stage=stage):
                self.assertEqual(checks.alarm_problems(deployed(stage), stage, logical_id), [])
    test.__doc__ = f"{logical_id} exists, watches its metric and treats missing data as intended."
    return test


# One test per alarm.
for _alarm in checks.expected_alarms("dev"):
    setattr(AlarmsPage, f"test_alarm_{_alarm}", _alarm_test(_alarm))


class Logs(unittest.TestCase):
    def test_every_log_group_expires_and_every_function_and_the_api_log_to_one(self):
        for stage in STAGES:
            with self.subTest(stage=stage):
                self.assertEqual(checks.log_problems(deployed(stage)), [])

    def test_retention_per_stage(self):
        def days(stage):
            s = deployed(stage)
            return {s.value(g["Properties"]["RetentionInDays"]) for g in s.of_type("AWS::Logs::LogGroup").values()}
        self.assertEqual(days("dev"), {30})
        self.assertEqual(days("prod"), {365})

    def test_a_log_group_without_retention_fails(self):
        t = planted(lambda t: t["Resources"]["GetFunctionLogs"]["Properties"].pop("RetentionInDays"))
        self.assertEqual(checks.log_problems(deployed("dev", t)),
                         ["GetFunctionLogs keeps logs None days (not a CloudWatch retention, or forever)"])

    def test_a_function_without_its_log_group_fails(self):
        t = planted(lambda t: t["Resources"]["ListFunction"]["Properties"].pop("LoggingConfig"))
        self.assertTrue(checks.log_problems(deployed("dev", t)))

    def test_an_access_log_with_headers_fails(self):
        def mutate(t):
            setting = t["Resources"]["Api"]["Properties"]["AccessLogSetting"]
            setting["Format"] = setting["Format"].replace('"ip"', '"auth":"$context.requestOverride.header.Authorization","ip"')
        self.assertTrue(checks.log_problems(deployed("dev", planted(mutate))))


class Keys(unittest.TestCase):
    def test_secrets_under_the_service_key_used_through_secrets_manager_only(self):
        for stage in STAGES:
            with self.subTest(stage=stage):
                self.assertEqual(checks.key_problems(deployed(stage)), [])

    def test_credential_readers_decrypt_only_when_named(self):
        def readers(s):
            (key,) = s.of_type("AWS::KMS::Key").values()
            return [st for st in s.value(key["Properties"])["KeyPolicy"]["Statement"]
                    if st.get("Sid") == "CredentialReadersDecryptThroughSecretsManager"]
        self.assertEqual(readers(deployed("prod")), [])
        (st,) = readers(deployed("prod", CredentialReaderRoleArns=READER))
        self.assertEqual(st["Principal"]["AWS"], [READER])
        self.assertEqual(st["Action"], "kms:Decrypt")

    def test_a_key_statement_open_to_the_account_fails(self):
        def mutate(t):
            statements = t["Resources"]["SecretsKey"]["Properties"]["KeyPolicy"]["Statement"]
            statements[1]["Condition"] = {}
        self.assertTrue(checks.key_problems(deployed("dev", planted(mutate))))

    def test_no_function_may_write_api_key_items(self):
        for stage in STAGES:
            self.assertEqual(checks.deny_key_items_problems(deployed(stage)), [])

    def test_a_function_allowed_to_write_key_items_fails(self):
        t = planted(lambda t: t["Resources"]["NoApiKeyItemWrites"]["Properties"]["Roles"].pop(0))
        self.assertEqual(checks.deny_key_items_problems(deployed("dev", t)), ["FallbackFunctionRole may write KEY#/KEYID# items"])


class Table(unittest.TestCase):
    def test_keys_index_ttl_recovery_encryption(self):
        for stage in STAGES:
            self.assertEqual(checks.table_problems(deployed(stage), key_schema()), [])

    def test_a_table_without_point_in_time_recovery_fails(self):
        t = planted(lambda t: t["Resources"]["ConnectorsTable"]["Properties"].pop("PointInTimeRecoverySpecification"))
        self.assertTrue(checks.table_problems(deployed("dev", t), key_schema()))


class AbuseResistance(unittest.TestCase):
    def test_the_web_acl_guards_the_stage(self):
        for stage in STAGES:
            self.assertEqual(checks.abuse_problems(deployed(stage)), [])

    def test_the_key_shape_rule_passes_every_key_the_code_accepts_and_stops_garbage(self):
        regex, lowercased = checks.shape_regex(deployed("prod"))
        self.assertTrue(lowercased)
        shape = re.compile(regex)
        seen = lambda header: bool(shape.search(header.lower()))
        code, random = "placeholder0", "REPLACEWITHAREALTESTKEYFROMADMIN"
        for header in (f"Bearer ark_test_ent_{code}_{random}", f"bearer ark_live_ent_{code}_{random}",
                       f"BEARER  ark_live_ent_{code}_{random} ", f" Bearer ark_test_ent_0123456789ab_{'a1' * 16}"):
            self.assertTrue(seen(header), header)
        for header in ("", "Bearer", "Bearer x", "Basic dXNlcjpwYXNz", f"Bearer ark_prod_ent_{code}_{random}",
                       f"Bearer ark_test_ent_{code}_{random}x", f"Bearer ark_test_ent_short_{random}",
                       f"Bearer ark_test_ent_{code}_{random[:-1]}!", "Bearer " + "A" * 5000):
            self.assertFalse(seen(header), header)

    def test_what_api_gateway_answers_itself_is_the_error_envelope(self):
        for stage in STAGES:
            self.assertEqual(checks.gateway_response_problems(deployed(stage)), [])

    def test_a_gateway_answer_without_the_envelope_fails(self):
        t = planted(lambda t: t["Resources"]["Api"]["Properties"]["GatewayResponses"].pop("THROTTLED"))
        self.assertEqual(checks.gateway_response_problems(deployed("dev", t)),
                         ["THROTTLED: API Gateway's own body, not the envelope"])

    def test_a_key_shape_regex_with_a_group_fails(self):
        def mutate(t):
            rule = t["Resources"]["WebAcl"]["Properties"]["Rules"][2]
            regex = rule["Statement"]["NotStatement"]["Statement"]["RegexMatchStatement"]
            regex["RegexString"] = regex["RegexString"].replace("[lt][ie][vs][et]", "(live|test)")
        self.assertTrue(checks.abuse_problems(deployed("dev", planted(mutate))))

    def test_an_acl_without_the_per_key_limit_fails(self):
        t = planted(lambda t: t["Resources"]["WebAcl"]["Properties"]["Rules"].pop())
        self.assertIn("WebAcl: no per-key rate limit", checks.abuse_problems(deployed("dev", t)))

    def test_an_acl_not_associated_fails(self):
        t = planted(lambda t: t["Resources"].pop("WebAclAssociation"))
        self.assertTrue(checks.abuse_problems(deployed("dev", t)))


if __name__ == "__main__":
    unittest.main()

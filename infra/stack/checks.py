"""What an on-call engineer and a security reviewer check in the stack a stage deploys,
read from the translated template (infra/stack/translate.py). Each check returns the
problems it finds, as sentences; [] means the stack passes it. test_stack.py runs them on
each stage, and shows each one failing on a planted mistake."""

import json
import re

from resolve import Stack

STAGES = ("dev", "prod")
FUNCTIONS = ("fallback", "get", "list", "connect", "update", "credentials", "disconnect", "restore", "report", "sweeper", "sync")
# The functions behind API Gateway routes (the others are invoked by schedules and rules).
HTTP_FUNCTIONS = tuple(f for f in FUNCTIONS if f not in ("sweeper", "sync"))
# The retention values CloudWatch Logs accepts.
RETENTION_DAYS = {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}
# The property holding each explicit physical name, by resource type.
NAME_PROPERTIES = {
    "AWS::DynamoDB::Table": "TableName",
    "AWS::Events::EventBus": "Name",
    "AWS::SecretsManager::Secret": "Name",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::ApiGateway::RestApi": "Name",
    "AWS::ApiGateway::Stage": "StageName",
    "AWS::WAFv2::WebACL": "Name",
    "AWS::KMS::Alias": "AliasName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::IAM::Role": "RoleName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::CloudWatch::Dashboard": "DashboardName",
}
# Resources whose names must stay CloudFormation's own: a fixed name blocks an update
# that replaces them, and nothing outside the stack looks them up by name.
GENERATED_NAMES = {"AWS::CloudWatch::Alarm", "AWS::SQS::Queue", "AWS::CloudWatch::Dashboard", "AWS::Lambda::Function", "AWS::IAM::Role"}
# Settings whose value is a name space shared with other stacks (secret prefix, metrics).
SHARED_NAMESPACES = ("SECRET_PREFIX", "METRIC_NAMESPACE")
KEY_ITEM_PREFIXES = ["KEY#*", "KEYID#*"]


def stack(template, parameters):
    return Stack(template, parameters)


def function_ids(s):
    """{binary: logical id} of the Lambda functions (SAM keeps the logical ids)."""
    return {fid[: -len("Function")].lower(): fid for fid in s.of_type("AWS::Lambda::Function")}


def physical_names(s):
    """Every explicit physical name the stack creates, and the names spaces its functions
    write into: {(logical id, what): name}."""
    names = {}
    for logical_id, r in s.resources.items():
        prop = NAME_PROPERTIES.get(r["Type"])
        if prop and prop in r.get("Properties", {}):
            names[(logical_id, prop)] = s.value(r["Properties"][prop])
        visibility = r.get("Properties", {}).get("VisibilityConfig")
        if visibility:
            names[(logical_id, "MetricName")] = s.value(visibility["MetricName"])
        for i, rule in enumerate(r.get("Properties", {}).get("Rules", []) if r["Type"] == "AWS::WAFv2::WebACL" else []):
            names[(logical_id, f"Rules[{i}].MetricName")] = s.value(rule["VisibilityConfig"]["MetricName"])
    for logical_id, f in s.of_type("AWS::Lambda::Function").items():
        env = s.value(f["Properties"].get("Environment", {})).get("Variables", {})
        for var in SHARED_NAMESPACES:
            if var in env:
                names[(logical_id, var)] = env[var]
    return names


def isolation_problems(s, stage):
    problems = []
    for (logical_id, what), name in physical_names(s).items():
        if stage not in str(name):
            problems.append(f"{logical_id}.{what} = {name!r} does not carry the stage {stage!r}")
    for logical_id, r in s.resources.items():
        prop = NAME_PROPERTIES.get(r["Type"])
        if r["Type"] in GENERATED_NAMES and prop in r.get("Properties", {}):
            problems.append(f"{logical_id} has a fixed {prop}: leave it to CloudFormation")
    return problems


def alarm_actions_problems(s, topic):
    problems = []
    for logical_id, alarm in s.of_type("AWS::CloudWatch::Alarm").items():
        actions = s.value(alarm["Properties"]).get("AlarmActions")
        if topic and actions != [topic]:
            problems.append(f"{logical_id} notifies {actions}, not the alarm topic")
        if not topic and actions:
            problems.append(f"{logical_id} notifies {actions} though no topic was given")
    return problems


def expected_alarms(stage):
    """Every alarm the stack must have: what it watches and how missing data counts."""
    emf = f"Connectors/{stage}"
    alarms = {}
    for binary in FUNCTIONS:
        fid = binary.capitalize() + "Function"
        ref = f"<{fid}>"
        alarms[f"{fid}ErrorsAlarm"] = ("AWS/Lambda", "Errors", {"FunctionName": ref}, "Sum", ">=", 1, "notBreaching")
        alarms[f"{fid}ThrottlesAlarm"] = ("AWS/Lambda", "Throttles", {"FunctionName": ref}, "Sum", ">=", 1, "notBreaching")
        if binary in HTTP_FUNCTIONS:
            alarms[f"{fid}ServerErrorsAlarm"] = (
                emf, "requests", {"function": binary, "status_class": "5xx"}, "Sum", ">=", 5, "notBreaching")
    alarms["SweeperHeartbeatAlarm"] = (
        "AWS/Lambda", "Invocations", {"FunctionName": "<SweeperFunction>"}, "Sum", "<", 1, "breaching")
    alarms["SweeperFailureQueueAlarm"] = (
        "AWS/SQS", "ApproximateNumberOfMessagesVisible", {"QueueName": "<SweeperFailureQueue.QueueName>"},
        "Maximum", ">=", 1, "notBreaching")
    alarms["UndeliveredRecordsAlarm"] = (emf, "undelivered_records", {"function": "sweeper"}, "Maximum", ">=", 1, "notBreaching")
    alarms["BadItemsAlarm"] = (emf, "bad_items", {"function": "sweeper"}, "Sum", ">=", 1, "notBreaching")
    alarms["SyncFailureQueueAlarm"] = (
        "AWS/SQS", "ApproximateNumberOfMessagesVisible", {"QueueName": "<SyncFailureQueue.QueueName>"},
        "Maximum", ">=", 1, "notBreaching")
    alarms["SyncDroppedReportsAlarm"] = (emf, "dropped_invalid", {"function": "sync"}, "Sum", ">=", 1, "notBreaching")
    alarms["ApiServerErrorsAlarm"] = (
        "AWS/ApiGateway", "5XXError", {"ApiName": f"connectors-{stage}", "Stage": stage}, "Sum", ">=", 5, "notBreaching")
    return alarms


OPERATORS = {
    "GreaterThanOrEqualToThreshold": ">=",
    "GreaterThanThreshold": ">",
    "LessThanThreshold": "<",
    "LessThanOrEqualToThreshold": "<=",
}


def alarm_problems(s, stage, logical_id):
    """The alarm `logical_id` exists and watches what expected_alarms says."""
    want = expected_alarms(stage)[logical_id]
    alarm = s.resources.get(logical_id)
    if not alarm or alarm["Type"] != "AWS::CloudWatch::Alarm":
        return [f"no alarm {logical_id}"]
    p = s.value(alarm["Properties"])
    got = (
        p.get("Namespace"),
        p.get("MetricName"),
        {d["Name"]: d["Value"] for d in p.get("Dimensions", [])},
        p.get("Statistic"),
        OPERATORS.get(p.get("ComparisonOperator")),
        p.get("Threshold"),
        p.get("TreatMissingData"),
    )
    labels = ("namespace", "metric", "dimensions", "statistic", "comparison", "threshold", "missing data")
    problems = [f"{logical_id}: {label} is {g!r}, want {w!r}" for label, g, w in zip(labels, got, want) if g != w]
    if p.get("Period", 0) * p.get("EvaluationPeriods", 0) > 900:
        problems.append(f"{logical_id}: looks back more than 15 minutes")
    return problems


def unexpected_alarms(s, stage):
    extra = set(s.of_type("AWS::CloudWatch::Alarm")) - set(expected_alarms(stage))
    return [f"alarm {a} is not in the expected list" for a in sorted(extra)]


def log_problems(s):
    problems = []
    groups = s.of_type("AWS::Logs::LogGroup")
    for logical_id, group in groups.items():
        days = s.value(group["Properties"]).get("RetentionInDays")
        if days not in RETENTION_DAYS:
            problems.append(f"{logical_id} keeps logs {days!r} days (not a CloudWatch retention, or forever)")
    for fid, f in s.of_type("AWS::Lambda::Function").items():
        target = s.value(f["Properties"].get("LoggingConfig", {})).get("LogGroup")
        if target is None or target.strip("<>") not in groups:
            problems.append(f"{fid} logs to {target!r}, not to a log group of the stack")
    stages = s.of_type("AWS::ApiGateway::Stage")
    for sid, st in stages.items():
        access = s.value(st["Properties"]).get("AccessLogSetting")
        if not access:
            problems.append(f"{sid} has no access log")
            continue
        if access.get("DestinationArn", "").removesuffix(".Arn>").lstrip("<") not in groups:
            problems.append(f"{sid} access log goes to {access.get('DestinationArn')!r}")
        try:
            fields = json.loads(access["Format"])
        except ValueError:
            problems.append(f"{sid} access log format is not one JSON object")
            continue
        needed = {
            "$context.requestId", "$context.identity.sourceIp", "$context.httpMethod", "$context.resourcePath",
            "$context.status", "$context.responseLatency", "$context.integrationErrorMessage",
            "$context.error.message",
        }
        missing = needed - set(fields.values())
        if missing:
            problems.append(f"{sid} access log lacks {sorted(missing)}")
        if re.search(r"header|requestOverride|\$input|authorizer", access["Format"], re.I):
            problems.append(f"{sid} access log format reads headers or the body")
    return problems


def deny_key_items_problems(s):
    """Every function's role carries the Deny on writes to API-key items."""
    roles = {s.value(f["Properties"]["Role"]) for f in s.of_type("AWS::Lambda::Function").values()}
    covered = set()
    for pid, policy in s.of_type("AWS::IAM::ManagedPolicy").items():
        p = s.value(policy["Properties"])
        for st in p["PolicyDocument"]["Statement"]:
            actions = set(st["Action"] if isinstance(st["Action"], list) else [st["Action"]])
            leading = st.get("Condition", {}).get("ForAnyValue:StringLike", {}).get("dynamodb:LeadingKeys")
            if (
                st["Effect"] == "Deny"
                and {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"} <= actions
                and sorted(leading or []) == sorted(KEY_ITEM_PREFIXES)
                and st.get("Resource") == "<ConnectorsTable.Arn>"
            ):
                covered |= {r.strip("<>") for r in p.get("Roles", [])}
    roles = {r.removesuffix(".Arn>").lstrip("<") for r in roles}
    return [f"{r} may write KEY#/KEYID# items" for r in sorted(roles - covered)]


def key_problems(s):
    problems = []
    keys = s.of_type("AWS::KMS::Key")
    if len(keys) != 1:
        return [f"{len(keys)} KMS keys; want the one for the secrets"]
    (kid, key), = keys.items()
    p = s.value(key["Properties"])
    if p.get("EnableKeyRotation") is not True:
        problems.append(f"{kid}: rotation is off")
    statements = p["KeyPolicy"]["Statement"]
    root = [st for st in statements if st["Principal"].get("AWS") == "arn:aws:iam::123456789012:root"]
    if len(root) != 1 or root[0]["Action"] != "kms:*":
        problems.append(f"{kid}: the account-root administration statement is missing")
    for st in statements:
        if st in root:
            continue
        via = st.get("Condition", {}).get("StringEquals", {}).get("kms:ViaService")
        if via != "secretsmanager.us-east-1.amazonaws.com":
            problems.append(f"{kid}: statement {st.get('Sid')} is not limited to use through Secrets Manager")
        actions = set(st["Action"] if isinstance(st["Action"], list) else [st["Action"]])
        if not actions <= {"kms:Decrypt", "kms:GenerateDataKey"}:
            problems.append(f"{kid}: statement {st.get('Sid')} grants {sorted(actions)}")
    writers = [st for st in statements if "kms:GenerateDataKey" in st["Action"]]
    if [st["Principal"]["AWS"] for st in writers] != ["<CredentialsFunctionRole.Arn>"]:
        problems.append(f"{kid}: only the credentials function may encrypt secret values")
    for sid, secret in s.of_type("AWS::SecretsManager::Secret").items():
        if s.value(secret["Properties"]).get("KmsKeyId") != f"<{kid}>":
            problems.append(f"{sid} is not encrypted under {kid}")
    for fid, f in s.of_type("AWS::Lambda::Function").items():
        env = json.dumps(s.value(f["Properties"].get("Environment", {})))
        if "{{resolve:" in env:
            problems.append(f"{fid} has a secret resolved into its environment")
        if s.value(f["Properties"]).get("Environment", {}).get("Variables", {}).get("SECRETS_KMS_KEY_ID") not in (None, f"<{kid}.Arn>"):
            problems.append(f"{fid} names another key for the secrets")
    return problems


def table_problems(s, key_schema):
    tables = s.of_type("AWS::DynamoDB::Table")
    if len(tables) != 1:
        return [f"{len(tables)} tables"]
    (tid, table), = tables.items()
    p = s.value(table["Properties"])
    problems = []
    keys = {k["KeyType"]: k["AttributeName"] for k in p["KeySchema"]}
    if keys != key_schema["keys"]:
        problems.append(f"{tid} keys {keys}")
    indexes = {i["IndexName"]: {k["KeyType"]: k["AttributeName"] for k in i["KeySchema"]} for i in p.get("GlobalSecondaryIndexes", [])}
    if indexes != key_schema["indexes"]:
        problems.append(f"{tid} indexes {indexes}")
    if p.get("TimeToLiveSpecification") != {"AttributeName": key_schema["ttl"], "Enabled": True}:
        problems.append(f"{tid} TTL {p.get('TimeToLiveSpecification')}")
    if p.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled") is not True:
        problems.append(f"{tid}: point-in-time recovery off")
    if p.get("SSESpecification", {}).get("SSEEnabled") is not True:
        problems.append(f"{tid}: not encrypted with a KMS key")
    if p.get("BillingMode") != "PAY_PER_REQUEST":
        problems.append(f"{tid}: not on-demand")
    if table.get("DeletionPolicy") != "Retain":
        problems.append(f"{tid}: deleted with the stack")
    return problems


def abuse_problems(s):
    """The web ACL guards the API's stage: per-IP and per-key rate limits, and nothing
    without a key-shaped Authorization header reaches a function."""
    problems = []
    stages = list(s.of_type("AWS::ApiGateway::Stage"))
    associations = [s.value(a["Properties"]) for a in s.of_type("AWS::WAFv2::WebACLAssociation").values()]
    acls = s.of_type("AWS::WAFv2::WebACL")
    if len(stages) != 1 or len(acls) != 1:
        return [f"{len(stages)} API stages and {len(acls)} web ACLs; want one of each"]
    (acl_id, acl), = acls.items()
    want = f"arn:aws:apigateway:us-east-1::/restapis/<Api>/stages/<{stages[0]}>"
    if [a.get("ResourceArn") for a in associations] != [want] or associations[0].get("WebACLArn") != f"<{acl_id}.Arn>":
        problems.append(f"the web ACL is not associated with the stage: {associations}")
    p = s.value(acl["Properties"])
    if p.get("Scope") != "REGIONAL" or "Allow" not in p.get("DefaultAction", {}):
        problems.append(f"{acl_id}: scope {p.get('Scope')}, default {p.get('DefaultAction')}")
    rules = {r["Name"]: r for r in p.get("Rules", [])}
    ip = rules.get("requests-per-ip", {}).get("Statement", {}).get("RateBasedStatement", {})
    if ip.get("AggregateKeyType") != "IP" or "Block" not in rules["requests-per-ip"]["Action"]:
        problems.append(f"{acl_id}: no per-IP rate limit")
    key = rules.get("requests-per-key", {}).get("Statement", {}).get("RateBasedStatement", {})
    headers = [k.get("Header", {}).get("Name", "").lower() for k in key.get("CustomKeys", [])]
    if key.get("AggregateKeyType") != "CUSTOM_KEYS" or headers != ["authorization"]:
        problems.append(f"{acl_id}: no per-key rate limit")
    shape = shape_regex(s)
    if shape is None or shape[0] is None:
        problems.append(f"{acl_id}: nothing blocks a malformed Authorization header (or its regex has a group WAF refuses)")
    missing = rules.get("missing-api-key", {})
    if missing.get("Action", {}).get("Block", {}).get("CustomResponse", {}).get("ResponseCode") != 401:
        problems.append(f"{acl_id}: a request without Authorization is not refused with 401")
    order = [r["Name"] for r in sorted(p.get("Rules", []), key=lambda r: r["Priority"])]
    if order.index("requests-per-key") < order.index("malformed-api-key") if {"requests-per-key", "malformed-api-key"} <= set(order) else False:
        problems.append(f"{acl_id}: garbage keys would each get a rate bucket before being refused")
    return problems


def shape_regex(s):
    """The regex (and transformation) of the malformed-key rule, if it blocks with 401."""
    for acl in s.of_type("AWS::WAFv2::WebACL").values():
        for rule in s.value(acl["Properties"]).get("Rules", []):
            inner = rule["Statement"].get("NotStatement", {}).get("Statement", {}).get("RegexMatchStatement")
            if inner and inner["FieldToMatch"].get("SingleHeader", {}).get("Name", "").lower() == "authorization":
                if rule["Action"].get("Block", {}).get("CustomResponse", {}).get("ResponseCode") == 401:
                    lower = [t["Type"] for t in inner["TextTransformations"]] == ["LOWERCASE"]
                    # WAF refuses capturing subexpressions (and the web ACL with them).
                    return (None if "(" in inner["RegexString"] else inner["RegexString"]), lower
    return None


def rule_failures(template, parameters):
    """The assertions of template's Rules that fail for these parameter values, as
    CloudFormation evaluates them before it creates or changes anything."""
    s = Stack(template, parameters)
    failed = []
    for name, rule in template.get("Rules", {}).items():
        if "RuleCondition" in rule and not s.value(rule["RuleCondition"]):
            continue
        for assertion in rule["Assertions"]:
            if not s.value(assertion["Assert"]):
                failed.append(f"{name}: {assertion.get('AssertDescription')}")
    return failed


# What API Gateway answers itself: the gateway response type, its status, the envelope's
# code, and whether it says when to retry (docs/DECISIONS.md, "The deployed stack").
GATEWAY_RESPONSES = {
    "THROTTLED": ("429", "rate_limited", True),
    "WAF_FILTERED": ("429", "rate_limited", True),
    "MISSING_AUTHENTICATION_TOKEN": ("404", "not_found", False),
    "RESOURCE_NOT_FOUND": ("404", "not_found", False),
    "UNSUPPORTED_MEDIA_TYPE": ("415", "unsupported_media_type", False),
    "REQUEST_TOO_LARGE": ("413", "payload_too_large", False),
    "DEFAULT_4XX": ("400", "validation_error", False),
    "DEFAULT_5XX": ("503", "service_unavailable", True),
}
ENVELOPE_FIELDS = ["error", "code", "type", "hint", "param", "request_id"]


def gateway_response_problems(s):
    """Every answer API Gateway makes itself is the error envelope, with its status."""
    problems = []
    (api,) = s.of_type("AWS::ApiGateway::RestApi").values()
    responses = s.value(api["Properties"])["Body"].get("x-amazon-apigateway-gateway-responses", {})
    for kind, (status, code, retry) in GATEWAY_RESPONSES.items():
        r = responses.get(kind)
        if r is None:
            problems.append(f"{kind}: API Gateway's own body, not the envelope")
            continue
        if r.get("statusCode") != status:
            problems.append(f"{kind}: status {r.get('statusCode')}, want {status}")
        template = r.get("responseTemplates", {}).get("application/json", "")
        try:
            body = json.loads(template.replace("$context.requestId", "abc"))
        except ValueError:
            problems.append(f"{kind}: the body is not JSON")
            continue
        if list(body) != ENVELOPE_FIELDS or body["code"] != code or body["error"] != code:
            problems.append(f"{kind}: body {body}")
        if body.get("request_id") != "req_abc":
            problems.append(f"{kind}: request_id is not req_ + API Gateway's request id")
        has_retry = "gatewayresponse.header.Retry-After" in r.get("responseParameters", {})
        if has_retry != retry:
            problems.append(f"{kind}: Retry-After {'missing' if retry else 'where none belongs'}")
    return problems


def sync_rule_problems(s):
    """The rule that feeds the sync function: on the service's bus, sync.reported events
    from any source but the service's own (whose events are never reports), to the sync
    function only, with retries for what the function throws back."""
    rules = s.of_type("AWS::Events::Rule")
    targets_sync = {
        lid: r for lid, r in rules.items()
        if any(s.value(t.get("Arn")) == "<SyncFunction.Arn>" for t in r["Properties"].get("Targets", []))
    }
    if len(targets_sync) != 1:
        return [f"{len(targets_sync)} rules target the sync function, want 1"]
    ((lid, rule),) = targets_sync.items()
    p = s.value(rule["Properties"])
    problems = []
    if p.get("EventBusName") != "<EventBus>":
        problems.append(f"{lid} listens on {p.get('EventBusName')!r}, not the service's bus")
    pattern = p.get("EventPattern", {})
    if pattern.get("detail-type") != ["sync.reported"]:
        problems.append(f"{lid} matches detail-type {pattern.get('detail-type')!r}, want ['sync.reported']")
    own = s.parameters["EventSource"]
    if pattern.get("source") != [{"anything-but": own}]:
        problems.append(f"{lid} matches source {pattern.get('source')!r}, want anything but {own!r}")
    if len(p.get("Targets", [])) != 1:
        problems.append(f"{lid} has {len(p.get('Targets', []))} targets, want the sync function alone")
    elif not p["Targets"][0].get("RetryPolicy", {}).get("MaximumRetryAttempts"):
        problems.append(f"{lid} does not retry what the sync function throws back")
    return problems

"""Outside scanners over template.yaml and the stack each stage deploys, offline, with one
central skip list (infra/scan-skips.yaml). infra/lint.sh runs it with .venv-scan's Python
(installed by infra/tools.sh) after writing .local/stack-<stage>.json (infra/stack/translate.py).

    scan.py cfn-lint FILE...    cfn-lint with the serverless rules (cfn-lint-serverless)
    scan.py checkov FILE...     checkov --framework cloudformation, no download, no API key
    scan.py iam STACK.json...   parliament over every IAM policy document of translated stacks

Each prints the findings the skip list does not cover and fails if there are any. A skip
names a rule, the logical ids it covers (fnmatch patterns) and a reason; a skip that no
longer matches anything fails too, so the list only ever says what is true.
"""

import fnmatch
import json
import os
import re
import subprocess
import sys

INFRA = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(INFRA)
SKIPS = os.path.join(INFRA, "scan-skips.yaml")
BIN = os.path.dirname(sys.executable)
sys.path.insert(0, os.path.join(INFRA, "stack"))
from resolve import Stack, samconfig_parameters  # noqa: E402  (standard library only)


class Finding:
    def __init__(self, tool, rule, resource, where, message, severity=""):
        self.tool, self.rule, self.resource = tool, rule, resource
        self.where, self.message, self.severity = where, message, severity

    def __str__(self):
        severity = f" [{self.severity}]" if self.severity else ""
        return f"{self.rule}{severity} {self.resource or '-'} ({self.where}): {self.message}"


def load_skips(tool, path=SKIPS):
    import yaml

    with open(path, encoding="utf-8") as f:
        skips = (yaml.safe_load(f) or {}).get(tool) or []
    for skip in skips:
        missing = {"rule", "resources", "reason"} - set(skip)
        if missing or not str(skip["reason"]).strip():
            sys.exit(f"{path}: {tool} skip {skip} lacks {sorted(missing) or ['a reason']}")
    return skips


def covering(finding, skips):
    """The skip that covers `finding`, or None."""
    for skip in skips:
        if skip["rule"] == finding.rule and any(
            fnmatch.fnmatchcase(finding.resource or "", pattern) for pattern in skip["resources"]
        ):
            return skip
    return None


def report(tool, findings, skips):
    """Prints what the skips leave, one line per skip used; the exit status."""
    used, left = {}, []
    for finding in findings:
        skip = covering(finding, skips)
        if skip is None:
            left.append(finding)
        else:
            used.setdefault(id(skip), []).append(finding)
    for skip in skips:
        hits = used.get(id(skip), [])
        if hits:
            resources = sorted({f.resource for f in hits})
            print(f"  skipped {skip['rule']} x{len(hits)} ({', '.join(resources)}): {skip['reason'].strip()}")
    stale = [s for s in skips if id(s) not in used]
    for finding in left:
        print(f"  FINDING {finding}")
    for skip in stale:
        print(f"  STALE SKIP {skip['rule']} {skip['resources']}: matches nothing; remove it from {os.path.relpath(SKIPS, ROOT)}")
    print(f"{tool}: {len(findings)} findings, {len(findings) - len(left)} skipped, {len(left)} left, {len(stale)} stale skips")
    return 1 if left or stale else 0


# cfn-lint ------------------------------------------------------------------------------


def cfn_lint(files):
    run = subprocess.run(
        [os.path.join(BIN, "cfn-lint"), "--format", "json", *files, "-a", "cfn_lint_serverless.rules"],
        capture_output=True, text=True,
    )
    try:
        matches = json.loads(run.stdout or "[]")
    except json.JSONDecodeError:
        sys.exit(f"cfn-lint failed (exit {run.returncode}):\n{run.stdout}{run.stderr}")
    if run.returncode not in (0, 2, 4, 6, 8, 10, 12, 14) and not matches:
        sys.exit(f"cfn-lint failed (exit {run.returncode}):\n{run.stderr}")
    findings = []
    for m in matches:
        path = m["Location"].get("Path") or []
        resource = path[1] if len(path) > 1 and path[0] == "Resources" else None
        where = f"{os.path.relpath(m['Filename'], ROOT)}:{m['Location']['Start']['LineNumber']}"
        findings.append(Finding("cfn-lint", m["Rule"]["Id"], resource, where, m["Message"]))
    return findings


# checkov -------------------------------------------------------------------------------


def checkov_env():
    """checkov offline: no policy-metadata download, no platform, no telemetry."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BC_", "PRISMA_", "CKV_"))}
    env.update(BC_SKIP_MAPPING="TRUE", CHECKOV_RUN_SCA_PACKAGE_SCAN_V2="false", LOG_LEVEL="WARNING")
    return env


def checkov(files):
    args = [os.path.join(BIN, "checkov"), "--framework", "cloudformation", "--skip-download",
            "--skip-results-upload", "--quiet", "--compact", "-o", "json"]
    for f in files:
        args += ["-f", f]
    run = subprocess.run(args, capture_output=True, text=True, env=checkov_env(), cwd=ROOT)
    try:
        reports = json.loads(run.stdout)
    except json.JSONDecodeError:
        sys.exit(f"checkov failed (exit {run.returncode}):\n{run.stdout}{run.stderr}")
    reports = reports if isinstance(reports, list) else [reports]
    findings = []
    for rep in reports:
        summary = rep.get("summary", {})
        if summary.get("parsing_errors"):
            sys.exit(f"checkov could not parse: {rep['results'].get('parsing_errors')}")
        for c in rep.get("results", {}).get("failed_checks", []):
            resource = c["resource"].split(".", 1)[-1]
            where = f"{c['file_path'].lstrip('/')}:{c['file_line_range'][0]}"
            findings.append(Finding("checkov", c["check_id"], resource, where, c["check_name"]))
    if not reports or not any(r.get("summary", {}).get("resource_count") for r in reports):
        sys.exit("checkov scanned no resources")
    return findings


# parliament ----------------------------------------------------------------------------

# Parameters that are empty in samconfig.toml but, once filled in, add statements to a
# policy: checked with a plausible value, so those statements are checked too.
PLAUSIBLE = {
    "CredentialReaderRoleArns": ["arn:aws:iam::123456789012:role/erp-sync-worker"],
    "AlarmTopicArn": "arn:aws:sns:us-east-1:123456789012:oncall",
}


def stage_parameters(stage, template):
    """The values `sam deploy --config-env STAGE` gives, with PLAUSIBLE ones where empty."""
    values = samconfig_parameters(stage)
    for name, plausible in PLAUSIBLE.items():
        if values.get(name) in ("", None):
            values[name] = plausible
    return values


class Resolver(Stack):
    """Intrinsic functions replaced by concrete, plausible strings: parliament checks ARNs
    against each action's resource types, so a resource's Ref and Arn are shaped as AWS
    shapes them (names from the template where it gives one)."""

    def physical_name(self, logical_id):
        props = self.resources[logical_id].get("Properties", {})
        for key in ("TableName", "Name", "QueueName", "RoleName", "LogGroupName", "FunctionName"):
            if isinstance(props.get(key), (str, dict)):
                return self.value(props[key])
        return f"connectors-{logical_id}-1A2B3C4D5E6F"

    def arn(self, logical_id):
        kind = self.resources[logical_id]["Type"]
        name = self.physical_name(logical_id)
        prefix = "arn:aws:{}:us-east-1:123456789012:"
        return {
            "AWS::DynamoDB::Table": prefix.format("dynamodb") + f"table/{name}",
            "AWS::Events::EventBus": prefix.format("events") + f"event-bus/{name}",
            "AWS::SQS::Queue": prefix.format("sqs") + name,
            "AWS::IAM::Role": f"arn:aws:iam::123456789012:role/{name}",
            "AWS::KMS::Key": prefix.format("kms") + "key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "AWS::Lambda::Function": prefix.format("lambda") + f"function:{name}",
            "AWS::Logs::LogGroup": prefix.format("logs") + f"log-group:{name}:*",
            "AWS::SecretsManager::Secret": prefix.format("secretsmanager") + f"secret:{name}-AbCdEf",
            "AWS::WAFv2::WebACL": prefix.format("wafv2") + f"regional/webacl/{name}/1234",
        }.get(kind, prefix.format("unknown") + name)

    def resource_ref(self, name):
        kind = self.resources[name]["Type"]
        if kind in ("AWS::SecretsManager::Secret", "AWS::IAM::ManagedPolicy"):
            return self.arn(name)
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.us-east-1.amazonaws.com/123456789012/{self.physical_name(name)}"
        if kind == "AWS::KMS::Key":
            return "1234abcd-12ab-34cd-56ef-1234567890ab"
        return self.physical_name(name)

    def resource_att(self, logical_id, attribute):
        if attribute == "Arn":
            return self.arn(logical_id)
        if attribute == "StreamArn":
            return self.arn(logical_id) + "/stream/2024-01-01T00:00:00.000"
        return f"{self.physical_name(logical_id)}-{attribute}"


# Where policy documents live, by resource type. Trust policies (AssumeRolePolicyDocument)
# are left out: parliament reads identity and resource policies, not trust policies.
POLICY_PATHS = {
    "AWS::IAM::Role": lambda p: [(f"Policies/{x['PolicyName']}", x["PolicyDocument"]) for x in p.get("Policies", [])],
    "AWS::IAM::Policy": lambda p: [("PolicyDocument", p["PolicyDocument"])],
    "AWS::IAM::ManagedPolicy": lambda p: [("PolicyDocument", p["PolicyDocument"])],
    "AWS::KMS::Key": lambda p: [("KeyPolicy", p["KeyPolicy"])] if "KeyPolicy" in p else [],
    "AWS::SQS::QueuePolicy": lambda p: [("PolicyDocument", p["PolicyDocument"])],
    "AWS::SNS::TopicPolicy": lambda p: [("PolicyDocument", p["PolicyDocument"])],
    "AWS::SecretsManager::ResourcePolicy": lambda p: [("ResourcePolicy", p["ResourcePolicy"])],
    "AWS::Events::EventBusPolicy": lambda p: [("Statement", {"Version": "2012-10-17", "Statement": [p["Statement"]]})] if "Statement" in p else [],
}
# Findings below this fail nothing (parliament's LOW: Resource "*" where a narrower one
# exists, a missing Version, ...); they are not printed either.
MINIMUM_SEVERITY = "MEDIUM"


def policy_documents(template, parameters):
    """(logical id, where in it, concrete policy document) for each document."""
    resolver = Resolver(template, parameters)
    for logical_id, resource in template["Resources"].items():
        extract = POLICY_PATHS.get(resource["Type"])
        if extract is None:
            continue
        if "Condition" in resource and not resolver.condition(resource["Condition"]):
            continue
        for where, document in extract(resource.get("Properties", {})):
            yield logical_id, where, resolver.value(document)


def iam(files):
    import parliament
    from parliament import analyze_policy_string, enhance_finding, override_config
    from parliament.cli import is_finding_filtered

    # As `parliament --include-community-auditors` does: their findings' severities.
    override_config(os.path.join(os.path.dirname(parliament.__file__), "community_auditors", "config_override.yaml"))
    # Raised from LOW: a misspelt action grants nothing in an Allow, and in a Deny (such as
    # NoApiKeyItemWrites) it silently denies nothing.
    for issue in ("UNKNOWN_ACTION", "UNKNOWN_PREFIX"):
        parliament.config[issue]["severity"] = "MEDIUM"
    findings, documents, low = [], 0, 0
    for path in files:
        named = re.fullmatch(r"stack-(\w+)\.json", os.path.basename(path))
        if not named:
            sys.exit(f"{path}: expected a translated stack named stack-<stage>.json")
        stage = named.group(1)
        with open(path, encoding="utf-8") as f:
            template = json.load(f)
        for logical_id, where, document in policy_documents(template, stage_parameters(stage, template)):
            documents += 1
            policy = analyze_policy_string(json.dumps(document), include_community_auditors=True)
            for finding in map(enhance_finding, policy.findings):
                if is_finding_filtered(finding, MINIMUM_SEVERITY):
                    low += 1
                    continue
                detail = finding.detail if isinstance(finding.detail, str) else json.dumps(finding.detail, default=str)
                findings.append(Finding("parliament", finding.issue, logical_id,
                                        f"{os.path.relpath(path, ROOT)} {where}",
                                        f"{finding.title}: {detail}", finding.severity))
    if not documents:
        sys.exit("parliament: no policy documents found")
    print(f"parliament: {documents} policy documents checked; findings of {MINIMUM_SEVERITY} severity and above count ({low} below it not shown)")
    return findings


TOOLS = {"cfn-lint": cfn_lint, "checkov": checkov, "iam": iam}

if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in TOOLS:
        sys.exit(__doc__)
    tool = sys.argv[1]
    skip_key = "parliament" if tool == "iam" else tool
    sys.exit(report(skip_key, TOOLS[tool](sys.argv[2:]), load_skips(skip_key)))

"""IAM users for the enforcing emulator that `make test` runs against.

moto server started with INITIAL_NO_AUTH_ACTION_COUNT=3 answers its first three calls
without looking at credentials; every later call needs a SigV4 signature by the access key
of a known IAM user, and that user's policies must allow the action (moto matches the
action only: it always evaluates Resource as "*", ignores Bool conditions, and would deny
any call guarded by a condition key it has no value for, so events:source is left out).

    setup ENDPOINT TEMPLATE OUT  spend the three free calls on an admin user (Action "*",
                                 for the test harness's own setup and inspection), then,
                                 as that admin, create one user per function of TEMPLATE
                                 holding the statements of that function's Policies, and
                                 write every access key to OUT (JSON)
    sync ENDPOINT TEMPLATE OUT   for an emulator set up before: succeed only if it refuses
                                 unknown keys and accepts OUT's admin key, then give every
                                 function user the policy TEMPLATE holds now (creating
                                 users of new functions) and rewrite OUT

Run with the emulator venv's Python (it has boto3 and PyYAML).
"""

import json
import sys

import boto3
import yaml
from botocore.exceptions import ClientError

REGION = "us-east-1"
ADMIN = "connectors-test-admin"

# What moto authorises for a DynamoDB transaction is the operation's own name; AWS has no
# such action and authorises each item's action instead (the grants the template holds).
TRANSACTION_ITEM_ACTIONS = {
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:ConditionCheckItem",
}


class TemplateLoader(yaml.SafeLoader):
    """Reads CloudFormation's short-form tags (!Ref, !Sub, !GetAtt, ...) as plain values."""


def _untagged(loader, _suffix, node):
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)


TemplateLoader.add_multi_constructor("!", _untagged)


def listed(value):
    return value if isinstance(value, list) else [value]


# Condition keys moto has no value for: it would deny every call the condition guards
# (it knows only sts:ExternalId). The template tests check these conditions instead.
UNEVALUATED_CONDITION_KEYS = {"events:source"}


def mirrorable(condition):
    """The part of a statement's Condition that moto can evaluate (None if nothing is left)."""
    if not condition:
        return None
    kept = {}
    for operator, keys in condition.items():
        left = {k: v for k, v in keys.items() if k not in UNEVALUATED_CONDITION_KEYS}
        if left:
            kept[operator] = left
    return kept or None


def function_policies(template_path):
    """{binary name: policy document} for every AWS::Serverless::Function."""
    with open(template_path, encoding="utf-8") as f:
        template = yaml.load(f, Loader=TemplateLoader)
    policies = {}
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        binary = resource["Metadata"]["BuildProperties"]["Binary"]
        statements = []
        for policy in resource["Properties"].get("Policies", []):
            if not isinstance(policy, dict) or "Statement" not in policy:
                sys.exit(f"{logical_id}: only inline policy documents can be mirrored, not {policy!r}")
            for statement in listed(policy["Statement"]):
                mirrored = {
                    "Effect": statement["Effect"],
                    "Action": listed(statement["Action"]),
                    "Resource": "*",
                }
                condition = mirrorable(statement.get("Condition"))
                if condition:
                    mirrored["Condition"] = condition
                statements.append(mirrored)
        granted = {a for s in statements if s["Effect"] == "Allow" for a in s["Action"]}
        if granted & TRANSACTION_ITEM_ACTIONS:
            statements.append(
                {"Effect": "Allow", "Action": ["dynamodb:TransactWriteItems"], "Resource": "*"}
            )
        policies[binary] = {"Version": "2012-10-17", "Statement": statements}
    return policies


def iam(endpoint, key=None):
    credentials = key or {"access_key_id": "unauthenticated", "secret_access_key": "unauthenticated"}
    return boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=credentials["access_key_id"],
        aws_secret_access_key=credentials["secret_access_key"],
    )


def user_with_policy(client, name, document):
    client.create_user(UserName=name)
    # A function granted nothing (fallback) gets a user with no policy: refused everything.
    if document["Statement"]:
        client.put_user_policy(UserName=name, PolicyName="granted", PolicyDocument=json.dumps(document))
    created = client.create_access_key(UserName=name)["AccessKey"]
    return {
        "user": name,
        "access_key_id": created["AccessKeyId"],
        "secret_access_key": created["SecretAccessKey"],
    }


def refuses_unknown_keys(endpoint):
    bogus = {"access_key_id": "AKIAUNKNOWNTESTKEY00", "secret_access_key": "not-a-key"}
    try:
        iam(endpoint, bogus).list_users()
    except ClientError as e:
        return e.response["Error"]["Code"] == "InvalidClientTokenId"
    return False


def setup(endpoint, template_path, out_path):
    policies = function_policies(template_path)
    admin_policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    # The three unauthenticated calls: create_user, put_user_policy, create_access_key.
    admin = user_with_policy(iam(endpoint), ADMIN, admin_policy)
    as_admin = iam(endpoint, admin)
    functions = {
        binary: user_with_policy(as_admin, f"connectors-fn-{binary}", document)
        for binary, document in sorted(policies.items())
    }
    if not refuses_unknown_keys(endpoint):
        sys.exit(f"the emulator at {endpoint} does not enforce IAM after the admin user was created")
    write(out_path, endpoint, admin, functions, policies)
    print(f"IAM enforced at {endpoint}: admin and {len(functions)} function users in {out_path}", file=sys.stderr)


def write(out_path, endpoint, admin, functions, policies):
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump({"endpoint": endpoint, "admin": admin, "functions": functions, "policies": policies}, f, indent=2)


def sync(endpoint, template_path, out_path):
    try:
        with open(out_path, encoding="utf-8") as f:
            recorded = json.load(f)
        admin, functions = recorded["admin"], recorded["functions"]
    except (OSError, ValueError, KeyError) as e:
        sys.exit(f"no IAM users recorded for {endpoint} ({out_path}: {e})")
    if not refuses_unknown_keys(endpoint):
        sys.exit(f"the emulator at {endpoint} accepts unknown access keys: it does not enforce IAM")
    as_admin = iam(endpoint, admin)
    try:
        as_admin.get_user(UserName=admin["user"])
    except ClientError as e:
        sys.exit(f"the emulator at {endpoint} refuses the recorded admin key: {e}")
    policies = function_policies(template_path)
    for binary, document in sorted(policies.items()):
        if binary in functions and document["Statement"]:
            as_admin.put_user_policy(
                UserName=functions[binary]["user"], PolicyName="granted", PolicyDocument=json.dumps(document)
            )
        elif binary in functions:
            try:
                as_admin.delete_user_policy(UserName=functions[binary]["user"], PolicyName="granted")
            except ClientError:
                pass  # it had none
        else:
            functions[binary] = user_with_policy(as_admin, f"connectors-fn-{binary}", document)
    write(out_path, endpoint, admin, functions, policies)


def main(argv):
    if len(argv) == 5 and argv[1] == "setup":
        setup(argv[2], argv[3], argv[4])
    elif len(argv) == 5 and argv[1] == "sync":
        sync(argv[2], argv[3], argv[4])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)

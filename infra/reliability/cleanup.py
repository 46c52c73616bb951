"""Removes what this run created in an emulator it reused (one it started is stopped
instead): the table, the bus with its rules and targets, the secrets under the prefix.
Everything comes from the environment infra/reliability.sh exports."""

import os

import boto3


def main():
    env = os.environ
    kw = dict(endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_REGION"])
    boto3.client("dynamodb", **kw).delete_table(TableName=env["CONNECTORS_TABLE"])
    events = boto3.client("events", **kw)
    bus = env["EVENT_BUS_NAME"]
    for rule in events.list_rules(EventBusName=bus).get("Rules", []):
        targets = events.list_targets_by_rule(Rule=rule["Name"], EventBusName=bus).get("Targets", [])
        if targets:
            events.remove_targets(Rule=rule["Name"], EventBusName=bus, Ids=[t["Id"] for t in targets])
        events.delete_rule(Name=rule["Name"], EventBusName=bus)
    events.delete_event_bus(Name=bus)
    sm = boto3.client("secretsmanager", **kw)
    pages = sm.get_paginator("list_secrets").paginate(
        IncludePlannedDeletion=True, Filters=[{"Key": "name", "Values": [env["SECRET_PREFIX"]]}])
    for page in pages:
        for s in page["SecretList"]:
            sm.delete_secret(SecretId=s["ARN"], ForceDeleteWithoutRecovery=True)


if __name__ == "__main__":
    main()

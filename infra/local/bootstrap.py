"""Creates, on an AWS emulator, every table, queue and topic of `infra/resources.json` (the one
definition), and the seed plan catalogue. Used by the local stack and the tests."""
from __future__ import annotations

import json
from pathlib import Path

import boto3

TEMPLATE = Path(__file__).resolve().parents[1] / "resources.json"
TABLE_KEYS = ("TableName", "AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "BillingMode")
# what CloudFormation's AWS::SQS::Queue properties become in CreateQueue's Attributes (the KMS ones are
# the emulator's to ignore, and are passed anyway so a queue is created as the template says)
QUEUE_ATTRIBUTES = ("DelaySeconds", "MaximumMessageSize", "MessageRetentionPeriod", "ReceiveMessageWaitTimeSeconds",
                    "VisibilityTimeout", "KmsMasterKeyId", "KmsDataKeyReusePeriodSeconds", "SqsManagedSseEnabled",
                    "FifoQueue", "ContentBasedDeduplication", "DeduplicationScope", "FifoThroughputLimit")

# Seed plan catalogue for the local stack (fen): monthly and hourly prices in force since 2020.
SEED_PLANS = {
    "std-2c4g": {"monthly_price": 10000, "hourly_price": 20, "effective_from": "2020-01-01T00:00:00+08:00"},
    "pro-4c8g": {"monthly_price": 30000, "hourly_price": 60, "effective_from": "2020-01-01T00:00:00+08:00"},
}


def resources(kind: str) -> list[dict]:
    template = json.loads(TEMPLATE.read_text())
    return [r["Properties"] for r in template["Resources"].values() if r["Type"] == kind]


def _queues() -> dict[str, dict]:
    template = json.loads(TEMPLATE.read_text())
    return {k: r["Properties"] for k, r in template["Resources"].items() if r["Type"] == "AWS::SQS::Queue"}


def _text(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _renamed(name: str, prefix: str) -> str:
    return prefix + name[len("billing-"):] if name.startswith("billing-") else name


def create_all(region: str, endpoint: str | None = None, prefix: str = "billing-", *,
               dynamodb_endpoint: str | None = None, table_prefix: str | None = None) -> dict:
    """Tables go to `dynamodb_endpoint` (DynamoDB Local) when given, named with `table_prefix` when given."""
    session = boto3.session.Session(region_name=region)
    ddb = session.client("dynamodb", endpoint_url=dynamodb_endpoint or endpoint)
    existing = {name for page in ddb.get_paginator("list_tables").paginate() for name in page["TableNames"]}
    for props in resources("AWS::DynamoDB::Table"):
        params = {k: v for k, v in props.items() if k in TABLE_KEYS}
        params["TableName"] = _renamed(params["TableName"], table_prefix or prefix)
        if params["TableName"] not in existing:
            ddb.create_table(**params)
    sqs = session.client("sqs", endpoint_url=endpoint)
    queues = {}
    arns = {}  # logical id -> ARN, for the redrive policies that name a dead-letter queue
    # dead-letter queues (no redrive policy of their own) first, so every ARN is known when it is named
    for logical_id, props in sorted(_queues().items(), key=lambda item: "RedrivePolicy" in item[1]):
        name = _renamed(props["QueueName"], prefix)
        attributes = {key: _text(props[key]) for key in QUEUE_ATTRIBUTES if key in props}
        if "RedrivePolicy" in props:
            policy = dict(props["RedrivePolicy"])
            policy["deadLetterTargetArn"] = arns[policy["deadLetterTargetArn"]["Fn::GetAtt"][0]]
            attributes["RedrivePolicy"] = json.dumps(policy)
        queues[name] = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arns[logical_id] = sqs.get_queue_attributes(QueueUrl=queues[name], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns = session.client("sns", endpoint_url=endpoint)
    topics = {}
    for props in resources("AWS::SNS::Topic"):
        name = _renamed(props["TopicName"], prefix)
        topics[name] = sns.create_topic(Name=name)["TopicArn"]
    return {"queues": queues, "topics": topics}


def seed_plans(put) -> None:
    """`put(plan_id, body)`: through the API, so the seed goes where every price change goes."""
    for plan_id, body in SEED_PLANS.items():
        put(plan_id, body)


if __name__ == "__main__":
    import os

    print(json.dumps(create_all(os.environ.get("AWS_DEFAULT_REGION", "us-east-1"), os.environ.get("AWS_ENDPOINT_URL"),
                                dynamodb_endpoint=os.environ.get("AWS_ENDPOINT_URL_DYNAMODB")), indent=2))

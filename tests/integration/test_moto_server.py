"""``devstack.moto_server``: where moto's DynamoDB differs from DynamoDB in ways the
stack depends on, the local server behaves as DynamoDB does (moto server in its own
process, as the suite and the local stack run it)."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError

from tests.conftest import aws_client


@pytest.fixture
def table(moto_url):
    ddb = aws_client(moto_url, "dynamodb")
    name = f"moto-{uuid.uuid4().hex[:8]}"
    answer = ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )
    yield name, answer["TableDescription"]["LatestStreamArn"]
    ddb.delete_table(TableName=name)


def _put(name: str, key: str, *, new: bool = False) -> dict:
    put = {"TableName": name, "Item": {"pk": {"S": key}}}
    if new:
        put["ConditionExpression"] = "attribute_not_exists(pk)"
    return {"Put": put}


def test_concurrent_transactions_are_isolated(moto_url, table):
    # Given many transactions at once, most of them cancelled (their key exists)
    name, _ = table
    ddb = aws_client(moto_url, "dynamodb")

    def claim(i: int) -> bool:
        try:
            ddb.transact_write_items(TransactItems=[_put(name, f"k{i % 10}", new=True), _put(name, f"h{i % 10}")])
        except ClientError:
            return False
        return True

    # When they all run
    with ThreadPoolExecutor(12) as pool:
        won = sum(pool.map(claim, range(120)))

    # Then each key was claimed once, and no cancelled one undid another's writes
    keys = {item["pk"]["S"] for item in ddb.scan(TableName=name)["Items"]}
    assert won == 10 and keys == {f"k{i}" for i in range(10)} | {f"h{i}" for i in range(10)}


def test_a_retried_transaction_with_its_token_succeeds_without_writing_again(moto_url, table):
    name, _ = table
    ddb = aws_client(moto_url, "dynamodb")
    items = [_put(name, "once", new=True)]
    ddb.transact_write_items(TransactItems=items, ClientRequestToken="token-1")
    ddb.transact_write_items(TransactItems=items, ClientRequestToken="token-1")  # botocore's retry
    with pytest.raises(ClientError, match="TransactionCanceled"):
        ddb.transact_write_items(TransactItems=items, ClientRequestToken="token-2")  # another call


def test_a_stream_never_shows_a_cancelled_transaction_nor_hides_what_came_after(moto_url, table):
    # Given a reader part way through the stream
    name, arn = table
    ddb, streams = aws_client(moto_url, "dynamodb"), aws_client(moto_url, "dynamodbstreams")
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    ddb.put_item(TableName=name, Item={"pk": {"S": "first"}})
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    answer = streams.get_records(ShardIterator=iterator["ShardIterator"])

    # When a transaction is cancelled after writing part of itself, and a write follows
    with pytest.raises(ClientError):
        ddb.transact_write_items(TransactItems=[_put(name, "cancelled"), _put(name, "first", new=True)])
    ddb.put_item(TableName=name, Item={"pk": {"S": "after"}})

    # Then the reader's next page has the write that followed, and not the cancelled one
    page = streams.get_records(ShardIterator=answer["NextShardIterator"])
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in page["Records"]] == ["after"]

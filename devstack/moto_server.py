"""moto server with DynamoDB's isolation: ``python -m devstack.moto_server`` takes moto
server's own arguments.

moto's DynamoDB is not safe under concurrent requests: ``TransactWriteItems`` deep-copies
each table it touches and, when a condition fails, puts the copy back, undoing whatever
other requests wrote meanwhile (a reservation of a card's reattempt, another order's
claim). DynamoDB serialises conflicting writes instead. Here every DynamoDB and DynamoDB
Streams request runs under one lock, so concurrent clients (the local runtime's
execution environments, threads in a test) see the atomic, isolated table they would on
AWS; the requests themselves still arrive concurrently, over HTTP, from other processes.

And ``TransactWriteItems`` honours ``ClientRequestToken`` as DynamoDB does: botocore
sends one token per call and the same token on its retries, and a retry of a
transaction that succeeded (its answer was lost to a read timeout) succeeds again without
writing again (moto would refuse it: its conditions no longer hold). Tokens are kept ten
minutes, as DynamoDB keeps them.

A cancelled transaction is undone item by item: moto deep-copies every table a
transaction touches before it runs (its rollback), a cost that grows with the table
(tens of milliseconds per transaction once a test session has written a few thousand
items) and, with the one lock, delays every other request; here only the items the
transaction names are kept, and put back, with the stream's records of the cancelled
writes dropped.

And a stream's shard iterator reads the table's live shard: moto undoes a cancelled
transaction by putting a copy of the table back, whose stream shard is a copy too, so an
iterator taken before would go on reading the old shard: the records of the cancelled
transaction (changes that never happened) and, under their sequence numbers, never the
records written after (changes lost). DynamoDB Streams never shows a cancelled
transaction's writes. Iterators are also kept for a bounded number of reads (moto keeps
every one it ever handed out).
"""

from __future__ import annotations

import threading
import time

from moto.dynamodb.responses import DynamoHandler
from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

_lock = threading.RLock()


def _serialised(handler: type) -> None:
    original = handler.call_action

    def call_action(self):
        with _lock:
            return original(self)

    handler.call_action = call_action


_serialised(DynamoHandler)
_serialised(DynamoDBStreamsHandler)

TOKEN_SECONDS = 600.0
_tokens: dict[str, tuple[float, object]] = {}  # ClientRequestToken -> (when, the answer)


def _idempotent_transactions() -> None:
    original = DynamoHandler.transact_write_items

    def transact_write_items(self):
        token = (self.body or {}).get("ClientRequestToken")
        now = time.monotonic()
        for old in [t for t, (when, _) in _tokens.items() if now - when > TOKEN_SECONDS]:
            del _tokens[old]
        if token and token in _tokens:
            return _tokens[token][1]
        answer = original(self)  # (a cancelled transaction raises: only a success is kept)
        if token:
            _tokens[token] = (now, answer)
        return answer

    DynamoHandler.transact_write_items = transact_write_items


_idempotent_transactions()


def _item_rollback() -> None:
    import copy
    import types

    from moto.dynamodb import models
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    # moto's transact_write_items deep-copies each table it touches and puts the copy back
    # on failure: make that copy the table itself (so putting it back changes nothing)...
    models.copy = types.SimpleNamespace(
        deepcopy=lambda value, memo=None: value if isinstance(value, Table) else copy.deepcopy(value, memo),
        copy=copy.copy,
    )
    original = DynamoDBBackend.transact_write_items

    def transact_write_items(self, transact_items):
        # ...and keep, before it runs, the items it names and where each stream ends
        kept, streams = [], {}
        for entry in transact_items:
            try:
                _, op = next(iter(entry.items()))
                table = self.tables[op["TableName"]]
                attrs = op["Item"] if "Item" in op else op["Key"]
                key = {k: attrs[k] for k in (table.hash_key_attr, table.range_key_attr) if k}
                before = self.get_item(op["TableName"], key)
            except Exception:  # noqa: BLE001,S112 - moto's own validation answers for it below
                continue
            kept.append((op["TableName"], key, copy.deepcopy(before.to_json()["Attributes"]) if before else None))
            if table.stream_shard is not None:
                streams.setdefault(op["TableName"], (table, len(table.stream_shard.items)))
        try:
            return original(self, transact_items)
        except Exception:
            for name, key, before in reversed(kept):
                if before is None:
                    if self.get_item(name, key) is not None:
                        self.delete_item(name, key)
                else:
                    self.put_item(name, before)
            for table, length in streams.values():
                del table.stream_shard.items[length:]  # a cancelled write never reaches the stream
            raise

    DynamoDBBackend.transact_write_items = transact_write_items


_item_rollback()

KEPT_ITERATORS = 10_000


def _live_shards() -> None:
    from moto.dynamodbstreams.models import ShardIterator

    read = ShardIterator.get

    def get(self, limit: int = 1000):
        table = self.streams_backend.dynamodb.get_table(self.stream_shard.table.name)
        self.stream_shard = table.stream_shard  # the live shard, not one a rollback replaced
        answer = read(self, limit)
        iterators = self.streams_backend.shard_iterators
        while len(iterators) > KEPT_ITERATORS:
            del iterators[next(iter(iterators))]
        return answer

    ShardIterator.get = get


_live_shards()


def main() -> None:
    from moto.server import main as moto_main

    moto_main()


if __name__ == "__main__":
    main()

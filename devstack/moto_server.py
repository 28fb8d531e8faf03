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

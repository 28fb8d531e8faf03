"""moto server with DynamoDB's isolation: ``python -m devstack.moto_server`` takes moto
server's own arguments.

moto's DynamoDB is not safe under concurrent requests: ``TransactWriteItems`` deep-copies
each table it touches and, when a condition fails, puts the copy back, undoing whatever
other requests wrote meanwhile (a reservation of a card's reattempt, another order's
claim). DynamoDB serialises conflicting writes instead. Here every DynamoDB and DynamoDB
Streams request runs under one lock, so concurrent clients (the local runtime's
execution environments, threads in a test) see the atomic, isolated table they would on
AWS; the requests themselves still arrive concurrently, over HTTP, from other processes.
"""

from __future__ import annotations

import threading

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


def main() -> None:
    from moto.server import main as moto_main

    moto_main()


if __name__ == "__main__":
    main()

"""The local AWS emulator (moto), with DynamoDB requests serialised.

moto 5's TransactWriteItems copies each touched table up front and, when the transaction is cancelled,
puts those copies back, undoing writes other threads committed meanwhile. Real DynamoDB has no such
window. Running the emulator's DynamoDB requests one at a time is one valid ordering of them, so the
app's own races still show and the emulator's do not."""
from __future__ import annotations

import sys
import threading

_LOCK = threading.RLock()


def serialize_dynamodb() -> None:
    from moto.dynamodb.responses import DynamoHandler

    if getattr(DynamoHandler.call_action, "_serialised", False):
        return
    original = DynamoHandler.call_action

    def call_action(self):
        with _LOCK:
            return original(self)

    call_action._serialised = True
    DynamoHandler.call_action = call_action


def main(argv: list[str]) -> None:
    """`python -m infra.local.emulator -H 127.0.0.1 -p 5000`: moto_server with the lock."""
    from moto.server import main as moto_main

    serialize_dynamodb()
    moto_main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])

"""The local AWS emulator (moto), with DynamoDB requests serialised (and three of moto's quadratic costs
removed: a copy of every touched table per transaction, queue attributes per message sent and per
message received).

moto 5's TransactWriteItems copies each touched table up front and, when the transaction is cancelled,
puts those copies back, undoing writes other threads committed meanwhile. Real DynamoDB has no such
window. Running the emulator's DynamoDB requests one at a time is one valid ordering of them, so the
app's own races still show and the emulator's do not."""
from __future__ import annotations

import copy
import sys
import threading

_LOCK = threading.RLock()


_SENDING = threading.local()


def cheap_standard_queue_sends() -> None:
    """moto 5 computes every attribute of a queue (three scans of all its messages) on each message sent,
    only to read `ContentBasedDeduplication`, which a standard (non-FIFO) queue does not have; sends to
    a queue holding thousands of messages then take quadratic time. While a standard queue is being sent
    to, its attributes read as empty: the same answer to that one question."""
    from moto.sqs.models import Queue, SQSBackend

    if getattr(SQSBackend.send_message, "_cheap", False):
        return
    original_send, original_attributes = SQSBackend.send_message, Queue.attributes

    def send_message(self, queue_name, *args, **kwargs):
        _SENDING.standard = not self.get_queue(queue_name).fifo_queue
        try:
            return original_send(self, queue_name, *args, **kwargs)
        finally:
            _SENDING.standard = False

    def attributes(self):
        if getattr(_SENDING, "standard", False) and not self.fifo_queue:
            return {}
        return original_attributes.fget(self)

    send_message._cheap = True
    SQSBackend.send_message = send_message
    Queue.attributes = property(attributes)


def cheap_retention_checks() -> None:
    """moto 5 checks each message a receive would return against the queue's retention period by
    computing every attribute of the queue (three scans of all its messages) to read that one; a queue
    holding a backlog of 2 000 then takes ~0.3 s per receive, and a consumer of the backlog quadratic
    time. The period is read from the queue itself: the same answer."""
    from moto.core.utils import unix_time
    from moto.sqs.models import SQSBackend

    if getattr(SQSBackend.is_message_valid_based_on_retention_period, "_cheap", False):
        return

    def is_message_valid_based_on_retention_period(self, queue_name, message) -> bool:
        retention_period = int(self.get_queue(queue_name).message_retention_period)
        return retention_period + message.sent_timestamp / 1000 > unix_time()

    is_message_valid_based_on_retention_period._cheap = True
    SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period


def serialize_dynamodb() -> None:
    from moto.dynamodb.responses import DynamoHandler

    cheap_standard_queue_sends()
    cheap_retention_checks()
    if getattr(DynamoHandler.call_action, "_serialised", False):
        return
    original = DynamoHandler.call_action

    def call_action(self):
        with _LOCK:
            return original(self)

    call_action._serialised = True
    DynamoHandler.call_action = call_action
    _roll_back_only_touched_items()


def _roll_back_only_touched_items() -> None:
    """moto's TransactWriteItems deep-copies every table it touches to roll a cancelled transaction
    back, so each transaction costs time in proportion to the tables' size and a run over n servers
    costs n² (300 servers: most of a minute). With DynamoDB serialised, nothing else writes during a
    transaction, so keeping copies of just the items it names and putting those back is the same
    rollback."""
    from moto.dynamodb import models as ddb
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    if getattr(ddb.DynamoDBBackend.transact_write_items, "_cheap", False):
        return
    original = ddb.DynamoDBBackend.transact_write_items

    class NoTableCopy:  # stands in for the `copy` module inside moto.dynamodb.models during the call
        @staticmethod
        def deepcopy(value, memo=None):
            return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    def transact_write_items(self, transact_items):
        touched = []
        try:
            for entry in transact_items:
                op = next(iter(entry.values()))
                table = self.tables[op["TableName"]]
                key = op.get("Key") or op["Item"]
                h = DynamoType(key[table.hash_key_attr])
                r = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
                touched.append((table, h, r, copy.deepcopy(table.get_item(h, r))))
        except (KeyError, TypeError, AttributeError, StopIteration):
            return original(self, transact_items)  # malformed: moto's own path reports it
        ddb.copy = NoTableCopy
        try:
            return original(self, transact_items)
        except Exception:
            for table, h, r, before in reversed(touched):
                if r is None:
                    table.items.pop(h, None) if before is None else table.items.__setitem__(h, before)
                elif before is None:
                    table.items.get(h, {}).pop(r, None)
                else:
                    table.items[h][r] = before
            raise
        finally:
            ddb.copy = copy

    transact_write_items._cheap = True
    ddb.DynamoDBBackend.transact_write_items = transact_write_items


def main(argv: list[str]) -> None:
    """`python -m infra.local.emulator -H 127.0.0.1 -p 5000`: moto_server with the lock."""
    from moto.server import main as moto_main

    serialize_dynamodb()
    moto_main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])

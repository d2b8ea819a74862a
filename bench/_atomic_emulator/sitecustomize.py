"""Put on PYTHONPATH by bench/load.py --atomic-emulator: once moto's DynamoDB handler is imported (in
the moto server process that infra/local/run.py starts), every DynamoDB request runs under one lock.

Why: moto 5's TransactWriteItems deep-copies each touched table up front and, when the transaction is
cancelled, puts those copies back, silently undoing any write another thread committed meanwhile. Real
DynamoDB has no such window; serialising the emulator's requests is one valid ordering of them, so the
app's own races (between its requests) still show, the emulator's do not. Harmless in other processes."""
import importlib.abc
import importlib.util
import sys
import threading

_LOCK = threading.RLock()
_TARGET = "moto.dynamodb.responses"


def _patch(module) -> None:
    handler = module.DynamoHandler
    original = handler.call_action

    def call_action(self):
        with _LOCK:
            return original(self)

    handler.call_action = call_action


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != _TARGET:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def patched_exec(module):
            exec_module(module)
            _patch(module)

        spec.loader.exec_module = patched_exec
        return spec


sys.meta_path.insert(0, _Finder())

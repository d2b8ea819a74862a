"""The local stack's API server (infra/local/api_server.py) on its own, without a stack: unknown methods
answered 405 in JSON, not 501, and 150 connections held open at once all answered (integration §6 "Volume").
A listen backlog of 5 passes the latter too, only slower (the kernel retries the dropped SYNs): the burst
through `make run` in tests/e2e is the test that fails with `chalice local`."""
from __future__ import annotations

import http.client
import json
import socket
import threading
from urllib.parse import urlsplit

import pytest


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "PROPFIND"])
def test_unknown_methods_answer_405_with_the_error_body(http_api, method):
    url = urlsplit(http_api)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    connection.request(method, "/ops/servers/srv-1")
    response = connection.getresponse()
    assert response.status == 405
    assert response.getheader("Allow") == "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
    assert json.loads(response.read())["error"]["code"] == "method_not_allowed"


def test_150_simultaneous_connections_are_all_accepted_and_answered(http_api):
    """All 150 connect before any sends (so all are open at once); each then gets its answer, none reset."""
    url = urlsplit(http_api)
    sockets = [socket.create_connection((url.hostname, url.port), timeout=60) for _ in range(150)]
    answers, failures = [], []

    def ask(sock: socket.socket) -> None:
        try:
            sock.sendall(b"TRACE / HTTP/1.1\r\nHost: local\r\n\r\n")
            answers.append(sock.makefile("rb").readline())
        except OSError as exc:  # a reset lands here
            failures.append(repr(exc))
        finally:
            sock.close()

    threads = [threading.Thread(target=ask, args=(sock,)) for sock in sockets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert answers == [b"HTTP/1.1 405 Method Not Allowed\r\n"] * 150

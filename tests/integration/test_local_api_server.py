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


# ---- API Gateway's limits (NOTES.md "API Gateway (REST API)"), with shorter ones injected ----------------
LIMITS = dict(integration_seconds=0.5, request_bytes=1_000, response_bytes=2_000)


@pytest.fixture
def limited():
    """A test-only app behind the local API server with small limits: a route that waits until the test
    lets it go, one that answers `n` bytes, one that echoes its body's length."""
    from chalice import Chalice
    from chalice.config import Config

    from infra.local import api_server
    from tests import support

    app = Chalice(app_name="gateway-limits")
    release, finished = threading.Event(), threading.Event()

    @app.route("/slow")
    def slow():
        release.wait(60)
        finished.set()
        return {"late": True}

    @app.route("/answer/{size}")
    def answer(size):
        return {"pad": "x" * int(size)}

    @app.route("/echo", methods=["POST"], content_types=["application/octet-stream"])
    def echo():
        return {"received": len(app.current_request.raw_body)}

    server = api_server.make_server("127.0.0.1", support.free_port(), app_object=app, config=Config.create(),
                                    limits=api_server.GatewayLimits(**LIMITS))
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {"port": server.port, "release": release, "finished": finished}
    finally:
        release.set()
        server.shutdown()
        server.server.server_close()
        thread.join(timeout=10)


def _ask(port: int, method: str, path: str, body: bytes | None = None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request(method, path, body=body, headers={"Content-Type": "application/octet-stream"} if body else {})
    response = connection.getresponse()
    return response.status, json.loads(response.read())


def test_a_route_past_the_integration_timeout_is_answered_504_and_its_handler_goes_on(limited):
    """API Gateway cuts the integration at 29 s (here 0.5 s) with 504; the function runs to its end."""
    assert _ask(limited["port"], "GET", "/slow") == (504, {"message": "Endpoint request timed out"})
    assert not limited["finished"].is_set()
    limited["release"].set()
    assert limited["finished"].wait(30)
    assert _ask(limited["port"], "GET", "/answer/10") == (200, {"pad": "x" * 10})  # the server serves on


def test_a_request_over_the_payload_limit_is_refused_413_before_the_app_sees_it(limited):
    """10 MB in API Gateway (here 1 000 bytes): the limit itself passes, one byte more does not."""
    assert _ask(limited["port"], "POST", "/echo", b"a" * 1_000) == (200, {"received": 1_000})
    assert _ask(limited["port"], "POST", "/echo", b"a" * 1_001) == (413, {"message": "Request Too Long"})


def test_a_response_over_lambdas_payload_limit_is_answered_502(limited):
    """6 MB in Lambda (here 2 000 bytes of the function's whole response, headers and all)."""
    status, body = _ask(limited["port"], "GET", "/answer/1000")
    assert (status, len(body["pad"])) == (200, 1000)
    assert _ask(limited["port"], "GET", "/answer/2000") == (502, {"message": "Internal server error"})

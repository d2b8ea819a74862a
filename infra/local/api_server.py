"""The local stack's API server: Chalice's own local gateway (what `chalice local` runs) behind a
threaded HTTP server that takes a burst, and answers unknown methods with the contract's JSON 405.

`chalice local` listens with http.server's backlog of 5, so a burst of simultaneous connections gets
some refused or reset (integration §6 "Volume" asks for at least 150). Chalice's local classes keep
`app.current_request` per thread, so serving each connection on its own thread is safe.

API Gateway's limits (REST API, NOTES.md) hold here too: a request body over 10 MB is refused 413
before the app sees it; a route still running at 29 s is answered 504 while its handler goes on, as the
function goes on in AWS; a response over 6 MB (Lambda's synchronous payload limit) is answered 502.

    python -m infra.local.api_server --host 127.0.0.1 --port 8000    # from the repository root
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "functions"
# the methods the local gateway serves; anything else is answered 405 here
SERVED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


@dataclass(frozen=True)
class GatewayLimits:
    integration_seconds: float = 29.0
    request_bytes: int = 10 * 1024 * 1024
    response_bytes: int = 6 * 1024 * 1024


class BurstServer(ThreadingHTTPServer):
    """One daemon thread per connection, and a listen queue long enough for a burst (the kernel caps
    it at net.core.somaxconn)."""
    request_queue_size = 1024
    daemon_threads = True


def _handler_class(limits: GatewayLimits):
    from chalice.local import ChaliceRequestHandler, LocalGatewayException

    class Handler(ChaliceRequestHandler):
        def __getattr__(self, name: str):
            # http.server looks up do_<METHOD> and answers 501 when it is missing
            if name.startswith("do_"):
                return self._method_not_allowed
            raise AttributeError(name)

        def _generic_handle(self) -> None:
            """Chalice's own handling, inside API Gateway's limits."""
            if int(self.headers.get("content-length") or 0) > limits.request_bytes:
                self.close_connection = True  # its body is not read
                self._gateway_error(413, "Request Too Long")
                return
            headers, body = self._parse_payload()
            finished, outcome = threading.Event(), {}

            def integration() -> None:
                try:
                    outcome["response"] = self.local_gateway.handle_request(
                        method=self.command, path=self.path, headers=headers, body=body)
                except LocalGatewayException as exc:
                    outcome["error"] = exc
                finally:
                    finished.set()

            # the handler runs on to its end when the gateway has given up on it, as a Lambda function does
            threading.Thread(target=integration, daemon=True, name="integration").start()
            if not finished.wait(limits.integration_seconds):
                self._gateway_error(504, "Endpoint request timed out")
            elif "error" in outcome:
                self._send_error_response(outcome["error"])
            elif "response" not in outcome:  # the local gateway itself failed: its traceback is logged
                self._gateway_error(502, "Internal server error")
            elif len(json.dumps(outcome["response"], default=str).encode()) > limits.response_bytes:
                self._gateway_error(502, "Internal server error")
            else:
                response = self._handle_binary(outcome["response"])
                response_headers = {**response["headers"], **response["multiValueHeaders"]}
                self._send_http_response(response["statusCode"], response_headers, response["body"])

        # the base class bound these names to its own _generic_handle
        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _generic_handle

        def _gateway_error(self, status: int, message: str) -> None:
            """API Gateway's own answer: `{"message": ...}`, not the contract's error body (the app never saw it)."""
            body = json.dumps({"message": message}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def _method_not_allowed(self) -> None:
            body = json.dumps({"error": {"code": "method_not_allowed",
                                         "message": f"method {self.command} is not allowed; "
                                                    f"use one of {', '.join(SERVED_METHODS)}"}}).encode()
            self.close_connection = True  # its body, if any, is not read
            self.send_response(405)
            self.send_header("Allow", ", ".join(SERVED_METHODS))
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

    return Handler


def make_server(host: str, port: int, stage: str = "dev", app_object=None, config=None,
                limits: GatewayLimits = GatewayLimits()):
    """A LocalDevServer for the Chalice app under functions/ (stage environment variables applied, as
    `chalice local` does), or for `app_object` with `config` when a test passes them in; `limits` are
    API Gateway's unless a test passes shorter ones."""
    from chalice import local
    from chalice.cli import factory as cli_factory
    from chalice.deploy.validate import validate_routes

    if app_object is None:
        config = cli_factory.CLIFactory(str(PROJECT), environ=os.environ).create_config_obj(chalice_stage_name=stage)
        app_object = config.chalice_app
        validate_routes(app_object.routes)
    if not isinstance(app_object, local.LocalChalice):
        # what chalice.local.create_local_server does: current_request becomes thread-local
        local.CustomLocalChalice.__bases__ = (local.LocalChalice, app_object.__class__)
        app_object.__class__ = local.CustomLocalChalice
    return local.LocalDevServer(app_object, config, host, port, handler_cls=_handler_class(limits), server_cls=BurstServer)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--stage", default="dev")
    args = parser.parse_args(argv)
    os.chdir(PROJECT)  # as `chalice local` runs: the app imports `chalicelib` from here
    sys.path.insert(0, str(PROJECT))
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")  # chalice local's logging
    server = make_server(args.host, args.port, args.stage)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server.server_close()


if __name__ == "__main__":
    main(sys.argv[1:])

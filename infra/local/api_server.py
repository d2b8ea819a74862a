"""The local stack's API server: Chalice's own local gateway (what `chalice local` runs) behind a
threaded HTTP server that takes a burst, and answers unknown methods with the contract's JSON 405.

`chalice local` listens with http.server's backlog of 5, so a burst of simultaneous connections gets
some refused or reset (integration §6 "Volume" asks for at least 150). Chalice's local classes keep
`app.current_request` per thread, so serving each connection on its own thread is safe.

    python -m infra.local.api_server --host 127.0.0.1 --port 8000    # from the repository root
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from http.server import ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "functions"
# the methods the local gateway serves; anything else is answered 405 here
SERVED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class BurstServer(ThreadingHTTPServer):
    """One daemon thread per connection, and a listen queue long enough for a burst (the kernel caps
    it at net.core.somaxconn)."""
    request_queue_size = 1024
    daemon_threads = True


def _handler_class():
    from chalice.local import ChaliceRequestHandler

    class Handler(ChaliceRequestHandler):
        def __getattr__(self, name: str):
            # http.server looks up do_<METHOD> and answers 501 when it is missing
            if name.startswith("do_"):
                return self._method_not_allowed
            raise AttributeError(name)

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


def make_server(host: str, port: int, stage: str = "dev", app_object=None, config=None):
    """A LocalDevServer for the Chalice app under functions/ (stage environment variables applied, as
    `chalice local` does), or for `app_object` with `config` when a test passes them in."""
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
    return local.LocalDevServer(app_object, config, host, port, handler_cls=_handler_class(), server_cls=BurstServer)


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

"""`permstore dev` / `permstore-dev`: the in-memory permstore on a port, for local development."""

from __future__ import annotations

import argparse
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .fake import ContractHandler, InMemoryPermstore
from .transport import _encode

WARNING = (
    "permstore dev: in-memory permstore on http://{host}:{port} - NOTHING PERSISTS (no Kafka, "
    "no Cassandra); any bearer token is accepted. Stop with Ctrl-C."
)


def make_server(
    host: str = "127.0.0.1", port: int = 8080, store: InMemoryPermstore | None = None
) -> ThreadingHTTPServer:
    """A threaded HTTP server answering the contract from an in-memory store (not started)."""
    handler = ContractHandler(store if store is not None else InMemoryPermstore())

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            path, _, query = self.path.partition("?")
            headers = {k.lower(): v for k, v in self.headers.items()}
            answer = handler(self.command, path, query, headers, body)
            payload, response_headers = _encode(answer)
            self.send_response(answer.status)
            for key, value in response_headers:
                self.send_header(key.decode(), value.decode())
            self.end_headers()
            self.wfile.write(payload)

        do_GET = _answer  # noqa: N815 - the stdlib's naming
        do_POST = _answer  # noqa: N815

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: one line per request would drown the warning."""

    return ThreadingHTTPServer((host, port), Handler)


def serve_in_thread(
    store: InMemoryPermstore | None = None, host: str = "127.0.0.1", port: int = 0
) -> tuple[ThreadingHTTPServer, str]:
    """Start the in-memory server in a daemon thread; returns it and its base URL."""
    server = make_server(host, port, store)
    threading.Thread(target=server.serve_forever, daemon=True, name="permstore-dev").start()
    return server, f"http://{host}:{server.server_address[1]}"


def run_dev(host: str = "127.0.0.1", port: int = 8080) -> None:
    """Run the in-memory permstore in the foreground until interrupted, warning it is volatile."""
    server = make_server(host, port)
    print(WARNING.format(host=host, port=server.server_address[1]), file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the permstore-dev console script."""
    parser = argparse.ArgumentParser(prog="permstore-dev", description=run_dev.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    run_dev(args.host, args.port)

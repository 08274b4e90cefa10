"""A real HTTP receiver of webhook deliveries, for the webhook tests."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tracking.governance import verify_signature


class Receiver:
    """A real HTTP server on a free port: it checks each delivery's signature (401 when it fails) and answers
    with the next status of `statuses`, then 200."""

    def __init__(self, statuses: tuple[int, ...] = ()) -> None:
        self.secret = ""
        self.statuses = list(statuses)
        self.received: list[tuple[dict[str, str], bytes, int]] = []  # (headers, body, status answered)
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    verified = verify_signature(receiver.secret, body, self.headers.get("X-Tracking-Signature", ""))
                    status = (receiver.statuses.pop(0) if receiver.statuses else 200) if verified else 401
                    receiver.received.append((dict(self.headers), body, status))
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"not now" if status >= 300 else b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/hooks/tracking?source=test"

    def accepted(self) -> list[dict]:
        """The bodies answered with 2xx, parsed."""
        with self.lock:
            return [json.loads(body) for _h, body, status in self.received if 200 <= status < 300]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

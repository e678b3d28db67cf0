"""A loopback HTTP server that records the JSON posts apprise's `json://` scheme makes."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from testbed.ports import free_port


class Webhook:
    """Records each POST (path and JSON body); answers `status` (200 by default). With `first_delay`,
    the first POST is held that many seconds before it is recorded and answered (a slow target)."""

    def __init__(self, status: int = 200, first_delay: float = 0.0) -> None:
        self.status = status
        self.first_delay = first_delay
        self.seen = 0
        self.posts: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with owner.lock:
                    owner.seen += 1
                    first = owner.seen == 1
                if first and owner.first_delay:
                    time.sleep(owner.first_delay)
                with owner.lock:
                    owner.posts.append((self.path, body))
                self.send_response(owner.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Webhook:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def url(self, path: str = "/hook/s3cr3t-t0ken") -> str:
        return f"json://127.0.0.1:{self.port}{path}"

    def received(self) -> list[tuple[str, dict[str, Any]]]:
        with self.lock:
            return list(self.posts)

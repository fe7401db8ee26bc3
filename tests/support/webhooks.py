"""A department's webhook receiver for tests: keeps every request it accepts exactly as it came."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Accept = Callable[[bytes, dict[str, str]], bool]  # (raw body, lower-cased headers) -> keep it?


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]  # lower-cased names
    raw: bytes  # the body, byte for byte (what a signature covers)

    @property
    def body(self) -> str:
        return self.raw.decode()


class RecordingReceiver:
    """Answers 204 and keeps the request, or 401 when ``accept`` (e.g. a signature check) says no."""

    def __init__(self, *, accept: Accept | None = None, path: str = "/hook") -> None:
        self.requests: list[Received] = []
        self.refused = 0
        self.path = path
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                kept = accept is None or accept(raw, headers)
                with receiver._lock:
                    if kept:
                        receiver.requests.append(Received(headers, raw))
                    else:
                        receiver.refused += 1
                self.send_response(204 if kept else 401)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.path}"

    def received(self) -> list[Received]:
        with self._lock:
            return list(self.requests)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

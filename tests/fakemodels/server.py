"""What the fake model servers share: listening on 127.0.0.1 (an ephemeral port), serving on a daemon
thread, and a request handler with JSON and server-sent-event helpers.

A protocol subclasses `FakeModelServer`, sets `handler` to its own `ModelHandler` subclass (whose
`do_GET` / `do_POST` reach the server object as `self.fake`) and keeps only its own protocol:
the shapes of its replies and its scripted steps.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self, cast


class ModelHandler(BaseHTTPRequestHandler):
    """One HTTP/1.1 request to a fake model server; logs nothing."""

    protocol_version = "HTTP/1.1"

    @property
    def fake(self) -> Any:
        """The `FakeModelServer` this request came to."""
        return cast(_Server, self.server).fake

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def read_json(self) -> Any:
        """The request body parsed as JSON (an empty body is `{}`); ValueError when it is not JSON."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw or b"{}")

    def header_dict(self) -> dict[str, str]:
        """The request's headers, names lowercased."""
        return {k.lower(): v for k, v in self.headers.items()}

    def send_json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def start_events(self) -> None:
        """A 200 answer streamed as server-sent events, the connection closed at its end."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def send_event(self, data: dict[str, Any] | str, event: str | None = None) -> None:
        """One event: `event: <event>` when named, then `data:` the JSON of `data` (a str as it is)."""
        head = f"event: {event}\n" if event else ""
        body = data if isinstance(data, str) else json.dumps(data)
        self.wfile.write(f"{head}data: {body}\n\n".encode())
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeModelServer) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), fake.handler)


class FakeModelServer:
    """A server on 127.0.0.1:<ephemeral>; `start()` / `stop()`, or use it as a context manager."""

    handler: type[ModelHandler] = ModelHandler
    thread_name = "fake-model"
    _server: _Server | None = None
    _thread: threading.Thread | None = None

    def bind(self) -> None:
        """Listen (so `url` is known) without serving yet; `start()` does it if not done."""
        if self._server is None:
            self._server = _Server(self)

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>`, the server's root."""
        assert self._server is not None, "start() the server first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def base_url(self) -> str:
        """`url` + `/v1`, the base URL OpenAI-style clients take."""
        return f"{self.url}/v1"

    def start(self) -> Self:
        self.bind()
        assert self._server is not None
        self._thread = threading.Thread(target=self._server.serve_forever, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        if thread is not None:  # shutdown() waits for serve_forever(): only once it runs
            server.shutdown()
            thread.join(10)
        server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

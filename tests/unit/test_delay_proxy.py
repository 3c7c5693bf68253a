"""The test suite's delaying proxy: requests through it arrive later, answers intact."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.utils.delay_proxy import DelayProxy


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as between the gateway and a stage

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def echo_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_every_request_is_delayed_and_answered_whole(echo_server: str) -> None:
    with DelayProxy(echo_server, delay_s=0.2) as proxy, httpx.Client() as client:
        big = "x" * 300_000  # arrives in many reads
        for body in ("a", big, "b"):
            start = time.perf_counter()
            resp = client.post(f"{proxy.url}/echo", content=body)
            elapsed = time.perf_counter() - start
            assert resp.status_code == 200 and resp.text == body
            assert elapsed >= 0.2
        assert proxy.connections == 1  # the keep-alive connection went through unchanged

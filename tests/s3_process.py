"""A local S3 server (moto) in its own process that counts requests and bytes sent.

Why a process, not moto's thread: a label layer read in place through pyogrio keeps the
GIL while GDAL waits on the network (docs/inputs.md), so a server thread in the test's own
process never answers and the read hangs. Run as a script (``python tests/s3_process.py
PORT``) it serves moto's S3 API on 127.0.0.1:PORT; ``GET /__counts__`` returns the
requests served since the last ``GET /__reset__`` as JSON ``[[method, path, bytes], …]``
(``path`` is ``/<bucket>/<key>``, path-style; ``bytes`` the response body's length).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


def _app(delay: float = 0.0) -> Any:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    inner = DomainDispatcherApplication(create_backend_app)
    log: list[list[Any]] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path in ("/__counts__", "/__reset__"):
            body = json.dumps(log).encode() if path == "/__counts__" else b"[]"
            if path == "/__reset__":
                log.clear()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        entry = [environ.get("REQUEST_METHOD", ""), path, 0]
        log.append(entry)
        if delay:
            time.sleep(delay)  # an object store's latency (S3: tens of ms a request)
        return _counted(inner(environ, start_response), entry)

    return app


def _counted(body: Iterable[bytes], entry: list[Any]) -> Iterator[bytes]:
    for chunk in body:
        entry[2] += len(chunk)
        yield chunk


def _serve(port: int, delay: float = 0.0) -> None:
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import make_server

    make_server(
        "127.0.0.1", port, _app(delay), True, request_handler=MotoRequestHandler
    ).serve_forever()


@dataclass
class CountingS3:
    """The running server: its endpoint and its request log."""

    endpoint: str

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(self.endpoint + path, timeout=30) as r:
            return json.loads(r.read())

    def reset(self) -> None:
        """Forget the requests served so far."""
        self._get("/__reset__")

    def log(self) -> list[tuple[str, str, int]]:
        """(method, /bucket/key, bytes sent) of every request since the last reset."""
        return [(m, p, int(n)) for m, p, n in self._get("/__counts__")]


@contextmanager
def counting_s3(port: int, delay_ms: float = 0.0) -> Iterator[CountingS3]:
    """Start the server on 127.0.0.1:`port` in a child process; stop it afterwards.

    Args:
        port: A free loopback port.
        delay_ms: Latency added to every S3 request (an object store's round trip).
    """
    proc = subprocess.Popen(
        [sys.executable, __file__, str(port), str(delay_ms / 1000)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = CountingS3(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                server.reset()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the S3 server on port {port} did not start") from None
                time.sleep(0.2)
        yield server
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    _serve(int(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 0.0)

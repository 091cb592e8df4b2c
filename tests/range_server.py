"""A loopback HTTP server with range requests that counts requests and bytes sent.

Files are served from memory by path; with ``AWS_ENDPOINT_URL`` pointing at it, GDAL's
``/vsis3/<bucket>/<key>`` reads ``/<bucket>/<key>`` (path-style, the signature ignored).
"""

from __future__ import annotations

import re

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response


class Ranges:
    """Serves files with HTTP range requests; counts the requests and the bytes sent."""

    def __init__(self, server: HTTPServer) -> None:
        self.files: dict[str, bytes] = {}
        self.requests = 0
        self.sent = 0
        server.expect_request(re.compile(".*")).respond_with_handler(self)
        self.url = server.url_for("/")

    def __call__(self, request: Request) -> Response:
        self.requests += 1
        body = self.files.get(request.path)
        if body is None:
            return Response("not found", status=404)
        r = Response(body, content_type="application/octet-stream")
        r = r.make_conditional(request, accept_ranges=True, complete_length=len(body))
        if request.method != "HEAD":
            self.sent += int(r.headers.get("Content-Length", 0))
        return r

    def reset(self) -> None:
        """Zero the counters."""
        self.requests = self.sent = 0

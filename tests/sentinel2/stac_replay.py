"""One loopback STAC world for the STAC tests: recorded or fixture responses replayed by
pytest-httpserver, small rasters made in the test behind the asset hrefs, and a server
that accepts connections and never answers.

* :class:`Replay` serves a STAC API (landing page, ``/search`` pages with a POST body
  ``next`` token) from JSON files whose catalogue hosts are rewritten to the loopback
  server, the files put behind asset hrefs (HTTP range requests honoured), extra routes
  (a token endpoint), and injected failures; it records every request.
* :func:`raster` writes a constant-value COG or JPEG 2000 on a tile's true pixel grid.
* :class:`Stalled` is a TCP server that reads requests and never answers them.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from pytest_httpserver import HTTPServer
from rasterio.io import MemoryFile
from rasterio.shutil import copy as rio_copy
from rasterio.transform import from_origin
from werkzeug import Request, Response

SHARED = Path(__file__).resolve().parents[2].parent / "shared/real-samples/stac"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def recorded(name: str = "earth_search_v1") -> Path:
    """The recorded responses' folder in ../shared; skips the test when it is absent."""
    path = SHARED / name
    if not path.is_dir():
        pytest.skip(f"recorded STAC responses not found at {path} (../shared is absent)")
    return path


def raster(
    value: int,
    origin: tuple[float, float],
    res: float,
    epsg: int,
    around,
    dtype: str = "uint16",
    size_m: float = 2000.0,
    nodata: int | None = 0,
    driver: str = "COG",
) -> bytes:
    """A constant-`value` raster on a tile's pixel grid (origin, res) over `size_m` around
    `around` (a (x, y) point, or (x0, x1, y) to cover only x0 <= x < x1); `driver` "COG"
    or "JP2OpenJPEG" (lossless)."""
    if len(around) == 2:
        x0, x1, y = around[0] - size_m / 2, around[0] + size_m / 2, around[1]
    else:
        x0, x1, y = around
    c0 = int(np.floor((x0 - origin[0]) / res))
    c1 = int(np.ceil((x1 - origin[0]) / res))
    r0 = int(np.floor((origin[1] - (y + size_m / 2)) / res))
    r1 = int(np.ceil((origin[1] - (y - size_m / 2)) / res))
    w, h = c1 - c0, r1 - r0
    tf = from_origin(origin[0] + c0 * res, origin[1] - r0 * res, res, res)
    prof = dict(
        driver="GTiff",
        width=w,
        height=h,
        count=1,
        dtype=dtype,
        crs=f"EPSG:{epsg}",
        transform=tf,
        nodata=nodata,
    )
    opts = {"REVERSIBLE": "YES", "QUALITY": "100"} if driver == "JP2OpenJPEG" else {}
    with MemoryFile() as mem:
        with mem.open(**prof) as dst:
            dst.write(np.full((1, h, w), value, dtype))
        ext = ".jp2" if driver == "JP2OpenJPEG" else ".tif"
        with mem.open() as src, MemoryFile(ext=ext) as out:
            rio_copy(src, out.name, driver=driver, **opts)
            return out.read()


cog = raster  # the Earth Search tests' name


class Replay:
    """A recorded STAC API on `server` under a fresh path prefix, plus files behind hrefs.

    `rec` holds ``landing.json``, ``search_page1.json`` (and ``search_page2.json`` when
    page 1 has a ``next`` link) and ``items/``; `api` and `hosts` (origin -> alias) are the
    real URLs rewritten to ``<base>/v1`` and ``<base>/<alias>``.
    """

    def __init__(self, server: HTTPServer, rec: Path, api: str, hosts: dict[str, str]) -> None:
        self.server, self.rec, self.api, self.hosts = server, rec, api, hosts
        self.prefix = f"/{uuid.uuid4().hex[:8]}"  # GDAL caches by URL: one prefix per test
        self.base = server.url_for(self.prefix)
        self.files: dict[str, bytes] = {}
        self.fail: dict[str, list[int]] = {}  # path -> statuses to answer before the file
        self.hits: list[tuple[str, str, bytes]] = []  # (method, path, body)
        self.headers: list[dict[str, str]] = []  # request headers, in hits' order
        self.edit: dict[str, Callable[[dict], None]] = {}  # item id -> edit before serving
        #: page (1, 2) -> (status, headers) to answer, in turn, before serving that page
        self.page_fail: dict[int, list[tuple[int, dict]]] = {1: [], 2: []}
        self.routes: dict[str, Callable[[Request], Response]] = {}  # path -> handler
        #: asked before serving a file: an answer (403…) refuses it, None serves it
        self.guard: Callable[[Request], Response | None] | None = None
        server.expect_request(re.compile(re.escape(self.prefix) + "/.*")).respond_with_handler(
            self._handle
        )

    def text(self, name: str) -> str:
        s = (self.rec / name).read_text()
        s = s.replace(self.api, f"{self.base}/v1")
        for host, alias in self.hosts.items():
            s = s.replace(host, f"{self.base}/{alias}")
        return s

    def page(self, n: int) -> dict:
        """Search page `n`: the recorded ``search_page<n>.json``, else (fixture folders
        without one) every item of ``items/`` in one FeatureCollection."""
        if (self.rec / f"search_page{n}.json").is_file():
            return json.loads(self.text(f"search_page{n}.json"))
        items = sorted((self.rec / "items").glob("*.json"))
        feats = [self.item(f.stem) for f in items]
        return {"type": "FeatureCollection", "features": feats, "links": []}

    def item(self, stem: str) -> dict:
        return json.loads(self.text(f"items/{stem}.json"))

    def put(self, href: str, data: bytes) -> None:
        self.files[urlparse(href).path] = data

    def _handle(self, request: Request) -> Response:
        path, body = request.path, request.get_data()
        self.hits.append((request.method, path, body))
        self.headers.append(dict(request.headers))
        for p, codes in self.fail.items():
            if path == p and codes:
                return Response("busy", status=codes.pop(0))
        if path in self.routes:
            return self.routes[path](request)
        if path in (f"{self.prefix}/v1", f"{self.prefix}/v1/"):
            return Response(self.text("landing.json"), content_type="application/json")
        if path == f"{self.prefix}/v1/search":
            n = 2 if "next" in json.loads(body or b"{}") else 1
            if self.page_fail[n]:
                status, headers = self.page_fail[n].pop(0)
                return Response('{"code": "busy"}', status=status, headers=headers)
            d = self.page(n)
            if n == 2:  # the recording ends here
                d["links"] = [lk for lk in d["links"] if lk["rel"] != "next"]
            for f in d["features"]:
                self.edit.get(f["id"], lambda _: None)(f)
            return Response(json.dumps(d), content_type="application/geo+json")
        if path in self.files:
            if self.guard and (refused := self.guard(request)) is not None:
                return refused
            r = Response(self.files[path], content_type="application/octet-stream")
            return r.make_conditional(
                request, accept_ranges=True, complete_length=len(self.files[path])
            )
        return Response("not found", status=404)

    def searches(self) -> list[dict]:
        return [json.loads(b) for m, p, b in self.hits if p.endswith("/v1/search")]

    def count(self, href_or_path: str) -> int:
        path = urlparse(href_or_path).path
        return sum(p == path for _, p, _ in self.hits)

    def serve_item(self, d: dict, dn: dict[str, int], around, masks: dict[str, int]) -> None:
        """COGs behind `d`'s assets (Earth Search raster v1 items): key -> value."""
        epsg = int(d["properties"]["proj:epsg"])
        for key, value in {**dn, **masks}.items():
            a = d["assets"][key]
            t = a["proj:transform"]
            res, origin = float(t[0]), (float(t[2]), float(t[5]))
            dtype = a["raster:bands"][0]["data_type"]
            self.put(a["href"], raster(value, origin, res, epsg, around, dtype))


class Stalled:
    """A TCP server on 127.0.0.1 that reads each request and never answers it.

    With `head_size`, a HEAD is answered (200, that Content-Length, byte ranges accepted)
    so that a client goes on to a range GET, which then stalls. ``requests`` lists the
    request lines received (one per try of a client); use as a context manager, which
    closes every connection on exit.
    """

    def __init__(self, head_size: int | None = None) -> None:
        self.head_size = head_size
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted: list[socket.socket] = []
        self.requests: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> Stalled:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        for c in self.accepted:
            c.close()
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.accepted.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        buf = b""
        try:
            while not self._stop.is_set():
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
                while b"\r\n\r\n" in buf:  # one request (GET/HEAD: no body)
                    head, buf = buf.split(b"\r\n\r\n", 1)
                    line = head.split(b"\r\n", 1)[0].decode("latin-1")
                    self.requests.append(line)
                    if line.startswith("HEAD ") and self.head_size is not None:
                        conn.sendall(
                            b"HTTP/1.1 200 OK\r\nAccept-Ranges: bytes\r\nContent-Type: "
                            b"image/tiff\r\nContent-Length: %d\r\n\r\n" % self.head_size
                        )
        except OSError:
            return

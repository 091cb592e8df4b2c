"""GDAL's raw error lines during a write, held and folded into the write's one-line error.

A full disk under a GeoTIFF write printed ``_tiffWriteProc: No space left on device.`` twice
on stderr beside the project's one-line ``disk full at …`` (issue 30): GDAL's TIFF I/O layer
reports through libtiff's global error handler, which neither GDAL nor rasterio route, so
libtiff writes the line to file descriptor 2 itself. GDAL's own CPLE messages reach the
``rasterio._env`` logger (rasterio's error handler) and Python's last-resort handler prints
them. Inside :func:`held`, both kinds are kept for the calling thread instead: folded into
the error the write raises (:attr:`Held.lines`, the caller marks them used), or, if the
write succeeds or fails otherwise, passed on as they would have been.

libtiff's handler is replaced once, through ctypes, by one that formats the message with
libc's ``vsnprintf`` (the ``va_list`` arrives as a pointer on Linux x86-64 and AArch64, the
only platforms it is installed on; elsewhere the lines print as before). Outside
:func:`held` it prints exactly what libtiff's default handler did (``module: message.``).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import platform
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

#: The logger rasterio's GDAL error handler writes to.
RASTERIO_LOGGER = "rasterio._env"
#: At most this many distinct lines are folded into one error.
MAX_LINES = 3

_HOLDERS: dict[int, list[Held]] = {}  # thread id -> its open held() blocks, innermost last
_INSTALLED: dict[str, object] = {}  # keeps the ctypes callback alive


@dataclass
class Held:
    """What GDAL and libtiff reported in one :func:`held` block of one thread."""

    records: list[logging.LogRecord] = field(default_factory=list)
    tiff: list[str] = field(default_factory=list)  # "module: message"
    used: bool = False  # set when the lines went into an error: not passed on

    @property
    def lines(self) -> list[str]:
        """The distinct messages, in order, at most :data:`MAX_LINES`."""
        seen: list[str] = []
        for line in [*self.tiff, *(r.getMessage() for r in self.records)]:
            line = " ".join(line.split())[:200]
            if line and line not in seen:
                seen.append(line)
        return seen[:MAX_LINES]

    def suffix(self) -> str:
        """``"; GDAL said: a; b"``, or ``""`` when nothing was reported; marks the lines used.

        Returns:
            The text to put in the error message.
        """
        lines = self.lines
        if not lines:
            return ""
        self.used = True
        return "; GDAL said: " + "; ".join(lines)


class _HoldFilter(logging.Filter):
    """On logger ``rasterio._env``: keeps warnings and errors of holding threads."""

    def filter(self, record: logging.LogRecord) -> bool:
        stack = _HOLDERS.get(record.thread or 0)
        if stack and record.levelno >= logging.WARNING and not getattr(record, "_flair_passed", 0):
            stack[-1].records.append(record)
            return False
        return True


def _tiff_libraries() -> list[str]:
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "/libtiff" in line}
    except OSError:
        return []
    return sorted(p for p in paths if p.startswith("/"))


def _install_tiff_handler() -> None:
    if "tiff" in _INSTALLED:
        return
    _INSTALLED["tiff"] = None  # one attempt per process, whatever happens
    if not sys.platform.startswith("linux") or platform.machine() not in ("x86_64", "aarch64"):
        return
    import rasterio  # noqa: F401  (loads GDAL and its libtiff)

    libc = ctypes.CDLL(None)
    vsnprintf = libc.vsnprintf
    vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]
    vsnprintf.restype = ctypes.c_int
    handler_type = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p)

    def handler(module: bytes | None, fmt: bytes | None, ap: int | None) -> None:
        try:
            buf = ctypes.create_string_buffer(2048)
            if fmt:
                vsnprintf(buf, len(buf), fmt, ap)
            text = buf.value.decode("utf-8", "replace")
            name = (module or b"").decode("utf-8", "replace")
            stack = _HOLDERS.get(threading.get_ident())
            if stack:
                stack[-1].tiff.append(f"{name}: {text}" if name else text)
            else:  # libtiff's own default handler: "module: message.\n" on stderr
                os.write(2, (f"{name}: " if name else "").encode() + buf.value + b".\n")
        except Exception:  # a C callback must never raise
            pass

    callback = handler_type(handler)
    for path in _tiff_libraries():
        lib = ctypes.CDLL(path)
        lib.TIFFSetErrorHandler.argtypes = [ctypes.c_void_p]
        lib.TIFFSetErrorHandler.restype = ctypes.c_void_p
        lib.TIFFSetErrorHandler(ctypes.cast(callback, ctypes.c_void_p))
    _INSTALLED["tiff"] = callback


def _install() -> None:
    logger = logging.getLogger(RASTERIO_LOGGER)
    if "filter" not in _INSTALLED:
        _INSTALLED["filter"] = f = _HoldFilter()
        logger.addFilter(f)
    with contextlib.suppress(OSError, AttributeError):
        _install_tiff_handler()


def _pass_on(held: Held) -> None:
    """Emit what `held` kept as it would have been without it (to an outer block, if any)."""
    logger = logging.getLogger(RASTERIO_LOGGER)
    outer = _HOLDERS.get(threading.get_ident())
    for text in held.tiff:
        if outer:
            outer[-1].tiff.append(text)
        else:
            os.write(2, f"{text}.\n".encode())
    for record in held.records:
        if outer:
            outer[-1].records.append(record)
        else:
            record._flair_passed = 1
            logger.handle(record)


@contextlib.contextmanager
def held() -> Iterator[Held]:
    """Keep this thread's GDAL and libtiff error lines for the block.

    Yields:
        The :class:`Held` lines; call :meth:`Held.suffix` to fold them into an error. Lines
        not used that way are passed on at the end of the block, as they would have been.
    """
    _install()
    me = threading.get_ident()
    block = Held()
    _HOLDERS.setdefault(me, []).append(block)
    try:
        yield block
    finally:
        stack = _HOLDERS[me]
        stack.pop()
        if not stack:
            del _HOLDERS[me]
        if not block.used:
            _pass_on(block)

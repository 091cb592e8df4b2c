"""Masking what authenticates before it reaches a log, an event log, metadata or a file.

Three kinds of credentials cross this pipeline (issue 15, point 7):

* registered secrets: the Sentinel Hub client secret and each OAuth access token once
  it is obtained (:func:`add_secret`), masked raw and URL-encoded (as in a form body);
* bearer tokens wherever they appear (``Authorization: Bearer …`` in a DEBUG header dump or
  an error body that echoes the request), and ``access_token``/``refresh_token``/
  ``id_token``/``client_secret`` values in JSON or form text;
* signed URLs: the signature and credential query parameters of Azure SAS (``sig``),
  AWS SigV4 (``X-Amz-Signature``, ``X-Amz-Credential``, ``X-Amz-Security-Token``), Google
  (``X-Goog-Signature``, ``X-Goog-Credential``) and plain ``token``/``access_token``
  parameters; the rest of the URL stays readable.

Each is replaced by ``***``. :func:`install` puts :func:`redact` in front of every log
handler of the process by wrapping Python's log-record factory: a record's message (with
its arguments) and its traceback text are masked when the record is made, so the console,
Dagster's event log (managed Python loggers) and compute logs all get the masked text.
Messages the project builds itself from server answers (HTTP error bodies) go through
:func:`redact` before they become an exception.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"
_SECRETS: set[str] = set()
_LOCK = threading.Lock()
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9\-._~+/]+=*")
_FIELDS = "access_token|refresh_token|id_token|client_secret"
_JSON_FIELD = re.compile(rf"""(?i)(["']?(?:{_FIELDS})["']?\s*[:=]\s*["']?)[^"'&\s,}}]+""")
_QUERY = re.compile(
    r"(?i)([?&](?:sig|signature|x-amz-signature|x-amz-credential|x-amz-security-token"
    r"|x-goog-signature|x-goog-credential|token|access_token)=)[^&\s\"'#)]+"
)


def add_secret(secret: str | None) -> None:
    """Mask `secret` (and its URL-encoded forms) in everything :func:`redact` sees."""
    if not secret or len(secret) < 4:  # a 1..3 character "secret" would mask ordinary text
        return
    with _LOCK:
        _SECRETS.update(s for s in (secret, quote(secret, safe=""), quote_plus(secret)) if s)


def redact(text: str) -> str:
    """`text` with every secret replaced by ``***``.

    Args:
        text: Any text about to be logged, stored or shown.

    Returns:
        `text` with registered secrets, bearer tokens, token fields and URL signatures
        replaced by ``***``.
    """
    for needle in sorted(_SECRETS, key=len, reverse=True):
        if needle in text:  # a whole token only: a secret never rewrites a key name around it
            text = re.sub(rf"(?<![A-Za-z0-9_]){re.escape(needle)}(?![A-Za-z0-9_])", MASK, text)
    text = _BEARER.sub(rf"\g<1>{MASK}", text)
    text = _JSON_FIELD.sub(rf"\g<1>{MASK}", text)
    return _QUERY.sub(rf"\g<1>{MASK}", text)


def _redact_record(record: logging.LogRecord) -> logging.LogRecord:
    try:
        message = record.getMessage()
    except Exception:  # a malformed call: leave it to logging's own error report
        return record
    masked = redact(message)
    if masked != message:
        record.msg, record.args = masked, None
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        text = logging.Formatter().formatException(record.exc_info)
        if (clean := redact(text)) != text:
            record.exc_text, record.exc_info = clean, None
    return record


class RedactingFilter(logging.Filter):
    """The same masking as a filter, for handlers built outside this process's factory."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask secrets in `record`'s message and arguments; always keep the record.

        Args:
            record: The log record, modified in place.

        Returns:
            Always True: the record is kept, masked.
        """
        _redact_record(record)
        return True


_installed = False


def install() -> None:
    """Mask every log record this process makes from now on (idempotent)."""
    global _installed
    with _LOCK:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            return _redact_record(previous(*args, **kwargs))

        logging.setLogRecordFactory(factory)
        _installed = True

"""``domain.json``: a domain's flight facts, validated before anything is built from them.

FLAIR's aerial metadata carries, per patch, the ``camera``, flight ``date`` (ISO
``YYYY-MM-DD``) and ``time`` of the domain's acquisition; they reach
``aerial_metadata.json`` and U-Net's metadata branch, so a missing field or a
``22/08/2021`` date must stop the domain with one line naming the file and the field
(issue 15), not be copied through. Other keys (bounds, bands, source…) are kept as given.

The time is read as ISO ``HH:MM`` / ``HH:MM:SS`` or as FLAIR's own ``HHhMM`` (the release's
metadata writes ``08h06``) and always kept as ISO ``HH:MM:SS`` (``10h30`` -> ``10:30:00``);
the FLAIR export writes it back as ``HHhMM``. A number is refused: YAML reads an unquoted
``10:30`` as the sexagesimal integer 630, which would otherwise become 00:10:30.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from flair_pipeline.domains import DomainId
from flair_pipeline.errors import DomainIdError, InputError
from flair_pipeline.storage import is_url, read_text

_FLAIR_TIME = re.compile(r"^(\d{1,2})[hH](\d{2})$")
_ISO_TIME = re.compile(r"^\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?$")


def flight_time(value: Any) -> Any:
    """A flight time as pydantic parses it: FLAIR's ``HHhMM`` turned into ``HH:MM:00``.

    ISO strings pass through unchanged (pydantic checks their ranges).

    Args:
        value: The ``time`` field as read from JSON or YAML.

    Returns:
        The value to parse as a ``datetime.time``.

    Raises:
        ValueError: A number (e.g. YAML's unquoted 10:30, read as 630), a string in
            neither form, or an ``HHhMM`` outside 00h00..23h59.
    """
    if isinstance(value, (bool, int, float)):
        raise ValueError(
            f'the number {value!r} is not a time; write it quoted, "10:30" or FLAIR\'s '
            '"10h30" (YAML reads an unquoted 10:30 as the number 630)'
        )
    if isinstance(value, str) and (m := _FLAIR_TIME.match(value.strip())):
        hours, minutes = int(m.group(1)), int(m.group(2))
        if hours > 23 or minutes > 59:
            raise ValueError(f"{value!r} is not a time of day (HHhMM: 00h00 to 23h59)")
        return f"{hours:02d}:{minutes:02d}:00"
    if isinstance(value, str) and not _ISO_TIME.match(value.strip()):
        raise ValueError(
            f'{value!r} is not a time: expected "HH:MM", "HH:MM:SS" or FLAIR\'s "HHhMM"'
        )
    return value


class DomainInfo(BaseModel):
    """The fields of ``domain.json`` the pipeline relies on (others are kept, unchecked)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    domain: str
    camera: str
    time: dt.time
    year: int | None = None
    date: dt.date

    @field_validator("date", mode="before")
    @classmethod
    def _iso_date(cls, v: Any) -> Any:
        if isinstance(v, str) and (len(v) != 10 or v[4] != "-" or v[7] != "-"):
            raise ValueError(f"{v!r} is not an ISO date YYYY-MM-DD")
        return v

    @field_validator("time", mode="before")
    @classmethod
    def _flair_time(cls, v: Any) -> Any:
        return flight_time(v)

    @field_validator("domain")
    @classmethod
    def _domain_id(cls, v: str) -> str:
        try:
            DomainId.parse(v)
        except DomainIdError as exc:
            raise ValueError(str(exc)) from None
        return v

    @field_validator("camera")
    @classmethod
    def _camera(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("empty camera name")
        return v

    @field_validator("date", "year")
    @classmethod
    def _flight_year(cls, v: Any, info: ValidationInfo) -> Any:
        if v is None or "domain" not in info.data:  # a bad id is reported on its own
            return v
        year = DomainId.parse(info.data["domain"]).year
        if (v.year if isinstance(v, dt.date) else v) != year:
            raise ValueError(f"not in the flight year {year} of {info.data['domain']}")
        return v

    def as_record(self) -> dict[str, Any]:
        """JSON-ready dict; ``date`` and ``time`` as ISO strings, as FLAIR writes them.

        Returns:
            The fields as JSON values.
        """
        return self.model_dump(mode="json")


def _one_line(path: Path | str, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(whole file)"
        msg = err["msg"].removeprefix("Value error, ")
        shown = repr(err.get("input"))
        found = "" if err["type"] == "missing" or shown in msg else f" (found {shown})"
        parts.append(f"field '{field}': {msg}{found}")
    return f"{path}: " + "; ".join(parts) + f" — fix {str(path).rsplit('/', 1)[-1]} and rerun"


def read_domain_info(path: str | Path, domain: str | None = None) -> DomainInfo:
    """Parse and validate a ``domain.json``.

    Args:
        path: The ``domain.json``.
        domain: The folder name, which must equal the file's ``domain`` field when given.

    Returns:
        The validated flight facts.

    Raises:
        InputError: The file is missing, not JSON, or a field is invalid: one line naming
            the file and the field.
    """
    if not is_url(path):
        path = Path(path)
    try:
        text = read_text(str(path)) if is_url(path) else Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        text = None
    if text is None:
        raise InputError(f"{path}: not found (every domain folder needs a domain.json)")
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    return validate_domain_info(data, path, domain)


def validate_domain_info(data: Any, path: str | Path, domain: str | None = None) -> DomainInfo:
    """Validate already-parsed flight facts (``domain.json`` or a spec's ``acquisition``).

    Args:
        data: The parsed JSON value.
        path: Where it comes from, named in errors.
        domain: The folder name, which must equal the ``domain`` field when given.

    Returns:
        The validated flight facts.

    Raises:
        InputError: `data` is not an object, a field is invalid, or the domain differs
            from the folder name: one line naming `path` and each bad field.
    """
    if not is_url(path):  # a Path would collapse a URL's `//` in the messages
        path = Path(path)
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object, found {type(data).__name__}")
    try:
        info = DomainInfo.model_validate(data)
    except ValidationError as exc:
        raise InputError(_one_line(path, exc)) from None
    if domain is not None and info.domain != domain:
        raise InputError(
            f"{path}: field 'domain': {info.domain!r} differs from its folder name {domain!r}"
        )
    return info

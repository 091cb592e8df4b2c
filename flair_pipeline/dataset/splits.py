"""Domain-level split assignment (FLAIR splits by domain, never by patch)."""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path

from flair_pipeline.config import SplitConfig
from flair_pipeline.domains import DomainId, Split
from flair_pipeline.errors import FlairPipelineError
from flair_pipeline.io import atomic_path


def _hash_unit(salt: str, domain: str) -> float:
    digest = hashlib.sha256(f"{salt}:{domain}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_split(domain: str, cfg: SplitConfig) -> tuple[Split, str]:
    """The split of one domain and the rule that decided it.

    Args:
        domain: Domain id, e.g. ``D006_2020``.
        cfg: The ``split`` section: explicit mapping, ratios and hash salt.

    Returns:
        (split, rule): ``official`` for FLAIR's own domains, ``mapping`` for
        ``split.mapping``, else ``hash`` (a salted hash of the id against the ratios).

    Raises:
        FlairPipelineError: ``split.mapping`` puts an official domain in another split.
    """
    did = DomainId.parse(domain)
    official = did.official_split
    mapped = cfg.mapping.get(domain)
    if official is not None:
        if mapped is not None and Split(mapped) != official:
            raise FlairPipelineError(
                f"split.mapping puts {domain} in {mapped}, but it is an official FLAIR "
                f"{official} domain; a domain can never be in two splits"
            )
        return official, "official"
    if mapped is not None:
        return Split(mapped), "mapping"
    u, acc = _hash_unit(cfg.salt, domain), 0.0
    for name in ("train", "validation", "test"):
        acc += cfg.ratios.get(name, 0.0)
        if u < acc:
            return Split(name), "hash"
    return Split.TEST, "hash"


def assign_splits(domains: Iterable[str], cfg: SplitConfig) -> dict[str, tuple[Split, str]]:
    """Splits of all domains, sorted by id.

    Args:
        domains: Domain ids (duplicates ignored).
        cfg: The ``split`` section.

    Returns:
        Domain id -> (split, rule), see :func:`assign_split`.
    """
    return {d: assign_split(d, cfg) for d in sorted(set(domains))}


def write_splits(assignment: Mapping[str, tuple[Split, str]], path: str | Path) -> Path:
    """Write ``splits.csv`` (domain, split, rule), atomically.

    Args:
        assignment: Domain id -> (split, rule).
        path: The CSV written.

    Returns:
        `path` as a Path.
    """
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["domain", "split", "rule"])
        for d, (s, rule) in sorted(assignment.items()):
            w.writerow([d, str(s), rule])
    return Path(path)


def read_splits(path: str | Path) -> dict[str, Split]:
    """Read ``splits.csv``; a domain listed twice is an error (split leakage).

    Args:
        path: A ``splits.csv`` (columns ``domain``, ``split``, ``rule``).

    Returns:
        Domain id -> split.

    Raises:
        FlairPipelineError: A domain is listed in two splits.
    """
    out: dict[str, Split] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            d = row["domain"]
            if d in out and out[d] != Split(row["split"]):
                raise FlairPipelineError(f"{path}: {d} is in both {out[d]} and {row['split']}")
            out[d] = Split(row["split"])
    return out

"""Record artifacts built outside `dvc repro` in DVC.

Record artifacts built outside `dvc repro` (Dagster UI, sensor, `flair-pipeline
materialize`) in DVC, so that ``dvc status`` is clean and ``dvc push`` ships them.

The UI and the sensor write at the very paths dvc.yaml declares (one owner per
artifact), so recording is ``dvc commit --force`` of the stages DVC sees as changed:
their outputs are hashed into the cache and ``dvc.lock`` takes the current params, code
and outputs. Two checks keep that honest, each refusal one line naming the stage:

- an output is missing (the stage was never materialized): materialize it or
  ``dvc repro STAGE``;
- a dependency (a param, code, an upstream output) changed *after* the stage's oldest
  output was written: the outputs were not rebuilt since, so recording them would claim
  results the current inputs did not make. Materialize the stage again, or
  ``dvc repro STAGE``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from flair_pipeline.dvc_tool import DvcError, run_dvc

MISSING = {"deleted", "not in cache"}


@dataclass
class RecordReport:
    """Stages recorded and stages refused (stage -> reason)."""

    recorded: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)


def _mtimes(path: Path) -> list[float]:
    if path.is_dir():
        return [f.stat().st_mtime for f in path.rglob("*") if f.is_file()]
    return [path.stat().st_mtime] if path.exists() else []


def _lock_outs(repo: Path) -> dict[str, list[str]]:
    lock = repo / "dvc.lock"
    if not lock.is_file():
        return {}
    doc = yaml.safe_load(lock.read_text()) or {}
    return {
        n: [o["path"] for o in st.get("outs", [])] for n, st in (doc.get("stages") or {}).items()
    }


def _changes(entries: list[Any], kind: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for e in entries:
        if isinstance(e, dict) and kind in e:
            out.update(e[kind])
    return out


def _why_not(repo: Path, stage: str, entries: list[Any], lock_outs: list[str]) -> str | None:
    outs = _changes(entries, "changed outs")
    missing = sorted(p for p, state in outs.items() if state in MISSING)
    if missing:
        return f"output {missing[0]} missing: materialize it or run `dvc repro {stage}`"
    written = [t for p in {*outs, *lock_outs} for t in _mtimes(repo / p)]
    if not written:
        return f"no output on disk: materialize it or run `dvc repro {stage}`"
    deps = _changes(entries, "changed deps")
    # a changed param shows as {params file: {key: state}}: its file's time counts
    newest = max((t for d in deps for t in _mtimes(repo / d)), default=0.0)
    if newest > min(written):
        dep = max(deps, key=lambda d: max(_mtimes(repo / d), default=0.0))
        return (
            f"{dep} changed after its outputs were written, so they were not rebuilt: "
            f"materialize it again or run `dvc repro {stage}`"
        )
    return None


def record(repo: Path) -> RecordReport:
    """Commit every changed stage of `repo` whose outputs are newer than its inputs.

    Commit every changed stage of `repo` whose outputs exist and are newer than its
    changed dependencies.

    Args:
        repo: Root of the git + DVC repository (holds ``dvc.yaml`` and ``dvc.lock``).

    Returns:
        The stages recorded (``dvc commit --force``) and, per refused stage, why.

    Raises:
        DvcError: DVC failed (not a DVC repository, corrupt dvc.yaml, …).
    """
    status = json.loads(run_dvc(repo, "status", "--json").stdout or "{}")
    lock = _lock_outs(repo)
    report = RecordReport()
    for stage, entries in sorted(status.items()):
        why = _why_not(repo, stage, entries, lock.get(stage.split(":")[-1], []))
        if why:
            report.refused[stage] = why
        else:
            report.recorded.append(stage)
    if report.recorded:
        run_dvc(repo, "commit", "--force", "--quiet", *report.recorded)
    return report


def format_report(report: RecordReport) -> str:
    """Human lines: what was recorded, then one line per refused stage.

    Args:
        report: What :func:`record` did.

    Returns:
        One line per fact, joined by newlines; one line saying DVC is up to date when
        nothing was recorded nor refused.
    """
    if not report.recorded and not report.refused:
        return "nothing to record: DVC is up to date with the workspace"
    lines = []
    if report.recorded:
        lines.append(f"recorded {len(report.recorded)} stage(s): {', '.join(report.recorded)}")
    lines += [f"not recorded: {stage}: {why}" for stage, why in report.refused.items()]
    return "\n".join(lines)


__all__ = ["DvcError", "RecordReport", "format_report", "record"]

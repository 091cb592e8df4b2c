"""Running DVC from the project: the executable, its environment, one-line failures.

DVC lives in its own environment (tools/dvc, linked as ``.venv/bin/dvc`` by
``make install``); its stages call ``flair-pipeline``, so the directory of this
interpreter goes first on the PATH DVC passes to them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from flair_pipeline.errors import FlairPipelineError


class DvcError(FlairPipelineError):
    """DVC is missing or one of its commands failed."""


def dvc_executable() -> str:
    """``$FLAIR_DVC``, else ``dvc`` beside this interpreter (``.venv/bin``), else on PATH.

    Returns:
        Path of the first of them that is a file.

    Raises:
        DvcError: None is: how to install DVC or point FLAIR_DVC at it.
    """
    for candidate in (
        os.environ.get("FLAIR_DVC"),
        str(Path(sys.executable).parent / "dvc"),
        shutil.which("dvc"),
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    raise DvcError(
        "dvc not found beside the interpreter nor on PATH: run `make install` "
        "(links .tools/dvc/bin/dvc into .venv/bin) or set FLAIR_DVC=/path/to/dvc"
    )


def dvc_env() -> dict[str, str]:
    """The environment for DVC: this interpreter's bin directory first on PATH.

    Returns:
        A copy of ``os.environ`` with PATH changed.
    """
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {**os.environ, "PATH": path}


def run_dvc(repo: Path, *args: str, capture: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``dvc ARGS`` in `repo`; a failure raises DvcError.

    With ``capture=False`` DVC's output streams to the terminal.

    Args:
        repo: The DVC repository (working directory of the command).
        *args: DVC's arguments, e.g. ``"status", "--json"``.
        capture: Capture stdout and stderr as text (else they stream).

    Returns:
        The completed process (exit status 0).

    Raises:
        DvcError: DVC exited non-zero: the command and DVC's last error line.
    """
    r = subprocess.run(
        [dvc_executable(), *args],
        cwd=repo,
        env=dvc_env(),
        text=True,
        capture_output=capture,
        check=False,
    )
    if r.returncode != 0:
        lines = [ln for ln in ((r.stderr or "") + (r.stdout or "")).splitlines() if ln.strip()]
        last = next((ln for ln in reversed(lines) if "ERROR" in ln), lines[-1] if lines else "")
        raise DvcError(
            f"`dvc {' '.join(args)}` in {repo} failed (exit {r.returncode})"
            + (f": {last.strip()}" if last else "; see DVC's output above")
        )
    return r

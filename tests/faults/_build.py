"""Build one domain's IMG and MSK folders the way the assets do (shared by the fault tests).

Run as a script (``python -m tests.faults._build RAW DATASET DOMAIN N [FAULT]``) it is the
child process the kill and disk-full tests start: FAULT ``kill-write:K`` SIGKILLs it at the
K-th file about to be renamed into place, ``kill-swap`` between the two renames of a
generation swap. It prints one JSON line: the error (class and message) or "ok".
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
from pathlib import Path

from flair_pipeline.config import SamplingConfig
from flair_pipeline.dataset.mosaic import Mosaic
from flair_pipeline.dataset.patch_writers import build_aerial_patches, build_label_masks
from flair_pipeline.dataset.rasterize import read_labels
from flair_pipeline.dataset.sampling import sample_patches
from flair_pipeline.layout import DatasetLayout, RawLayout

PATCH = 64


def build(raw: Path, dataset: Path, domain: str, n: int) -> int:
    """IMG then MSK of the first `n` grid patches of `domain`; return the patch count."""
    rl, dl = RawLayout(raw), DatasetLayout(dataset)
    cfg = SamplingConfig(patch_size=PATCH, max_patches_per_domain=n)
    with Mosaic(rl.ortho_dir(domain)) as mosaic:
        grid, _ = sample_patches(domain, mosaic, read_labels(rl.labels(domain)), cfg)
    build_aerial_patches(
        grid, rl.ortho_dir(domain), rl.dsm(domain), rl.dtm(domain), dl, PATCH, cfg.elevation_scale
    )
    build_label_masks(grid, rl.labels(domain), dl, PATCH, cfg.resolution)
    return len(grid)


def tree(root: Path) -> dict[str, str]:
    """Every file under `root` (hidden ones included): relative path -> sha1 of its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _arm(fault: str) -> None:
    import flair_pipeline.dataset.generation as generation
    import flair_pipeline.io as io

    kind, _, arg = fault.partition(":")
    if kind == "kill-write":
        real, calls = io._fsync, [0]

        def fsync(path: Path, directory: bool = False) -> None:
            if not directory:
                calls[0] += 1
                if calls[0] == int(arg):  # the temp file is complete, not yet renamed
                    os.kill(os.getpid(), signal.SIGKILL)
            real(path, directory)

        io._fsync = fsync  # type: ignore[assignment]
    elif kind == "kill-swap":
        real_replace = os.replace

        def replace(src, dst) -> None:
            real_replace(src, dst)
            if str(dst).endswith(generation.OLD_MARK):  # live moved aside, new not yet in
                os.kill(os.getpid(), signal.SIGKILL)

        generation.os.replace = replace  # type: ignore[attr-defined]
    elif kind:
        raise SystemExit(f"unknown fault {fault!r}")


if __name__ == "__main__":
    raw, dataset, domain, n = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    _arm(sys.argv[5] if len(sys.argv) > 5 else "")
    try:
        build(raw, dataset, domain, n)
        print(json.dumps({"result": "ok"}))
    except Exception as exc:  # reported to the parent test, which asserts on it
        print(json.dumps({"result": type(exc).__name__, "message": str(exc)}))

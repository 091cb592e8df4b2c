"""Code location of ``test_run_monitoring.py``: the project's per-domain dataset assets in a
``build_domain`` job on the in-process executor (the run worker runs the steps itself).

While the file named by ``FLAIR_TEST_KILL_MARK`` exists, the first run worker that reaches
its third file write deletes it and SIGKILLs its parent (the code server) and itself: the
machine-crash case where nothing is left to end the run.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import dagster as dg

import flair_pipeline.io as io
from flair_pipeline.defs.assets import dataset, sources
from flair_pipeline.defs.resources import PipelineConfigResource

KILL_AT = 3  # patch_grid's file, then the first IMG: killed while aerial_patches writes
_real, _calls = io._fsync, [0]


def _fsync(path: Path, directory: bool = False) -> None:
    mark = os.environ.get("FLAIR_TEST_KILL_MARK")
    if mark and not directory:
        _calls[0] += 1
        if _calls[0] == KILL_AT:
            try:
                os.remove(mark)  # only one worker ever dies
            except FileNotFoundError:
                pass
            else:
                os.kill(os.getppid(), signal.SIGKILL)
                os.kill(os.getpid(), signal.SIGKILL)
    _real(path, directory)


io._fsync = _fsync  # type: ignore[assignment]

ASSETS = [
    sources.domain_sources,
    dataset.patch_grid,
    dataset.aerial_patches,
    dataset.label_masks,
    dataset.dataset_metadata,
]

defs = dg.Definitions(
    assets=ASSETS,
    jobs=[
        dg.define_asset_job(
            "build_domain",
            selection=dg.AssetSelection.assets(*ASSETS),
            executor_def=dg.in_process_executor,
        )
    ],
    resources={"flair": PipelineConfigResource()},
)

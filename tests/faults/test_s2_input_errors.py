"""`sentinel2_series` fails at once, with one line naming the file, on input it cannot
recover from (issue 15: it retried a `KeyError 'year'` for 49–51 s)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import dagster as dg
import pytest

from flair_pipeline.defs.adapter import transient
from flair_pipeline.errors import FlairPipelineError
from flair_pipeline.orchestration.run import materialize
from tests.automation.test_sensor import _copy, _flair

DOMAIN = "D033_2021"


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        # validated by the one domain.json model (sources/domain_info.py); `year` itself
        # may be absent (the domain id holds it) but never wrong
        (lambda info: info.pop("date"), "field 'date': Field required"),
        (lambda info: info.update(year="twenty"), "field 'year': Input should be a valid"),
        (lambda info: info.update(year=2019), "field 'year': not in the flight year 2021"),
    ],
)
def test_bad_domain_json_fails_once_naming_file_and_field(
    tiny_world, tmp_path: Path, edit, said: str
) -> None:
    raw = tmp_path / "raw"
    _copy(tiny_world, raw, DOMAIN)
    info_path = raw / "domains" / DOMAIN / "domain.json"
    info = json.loads(info_path.read_text())
    edit(info)
    info_path.write_text(json.dumps(info))
    with dg.instance_for_test() as instance:
        t0 = time.perf_counter()
        with pytest.raises(FlairPipelineError) as err:
            materialize("key:sentinel2_series", [DOMAIN], _flair(tmp_path, raw), instance=instance)
        wall = time.perf_counter() - t0
        (run,) = instance.get_runs()
        retries = [
            e
            for e in instance.all_logs(run.run_id)
            if e.dagster_event
            and e.dagster_event.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY
        ]
    assert not retries
    assert f"{info_path}: {said}" in str(err.value)
    assert wall < 10  # the retry policy waits 10 s before a first retry


def test_only_os_level_io_errors_are_retried() -> None:
    import rasterio.errors

    assert transient(ConnectionResetError(104, "reset")) and transient(TimeoutError())
    assert transient(OSError(5, "Input/output error"))
    assert not transient(FileNotFoundError(2, "gone")) and not transient(PermissionError())
    assert not transient(rasterio.errors.RasterioIOError("not a GeoTIFF"))
    assert not transient(KeyError("year")) and not transient(ValueError("x"))

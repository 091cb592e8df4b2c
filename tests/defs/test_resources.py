"""The Dagster resource parses params.yaml once per version of the file."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from flair_pipeline.defs.resources import PipelineConfigResource


def test_params_parsed_once_and_reparsed_when_edited(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"sampling": {"patch_size": 64}}))
    flair = PipelineConfigResource(config_path=str(params))
    first = flair.load()
    assert first.sampling.patch_size == 64
    # the same object again: neither read nor validated a second time
    assert flair.load() is first
    assert (
        PipelineConfigResource(config_path=str(params)).load() is first
    )  # per file, not per instance
    assert flair.dataset().root == tmp_path / "data" / "dataset"
    # overrides are part of the key
    other = PipelineConfigResource(
        config_path=str(params), overrides=["sampling.patch_size=32"]
    ).load()
    assert other.sampling.patch_size == 32 and flair.load() is first
    # an edit (another mtime) is seen by a long-lived process
    params.write_text(yaml.safe_dump({"sampling": {"patch_size": 128}}))
    st = params.stat()
    os.utime(params, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    edited = flair.load()
    assert edited is not first and edited.sampling.patch_size == 128

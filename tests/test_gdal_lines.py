"""GDAL's lines held during a write: folded into the error, or passed on, never lost."""

from __future__ import annotations

import logging

import pytest

from flair_pipeline import gdal_lines


def test_lines_not_folded_are_passed_on_and_folded_ones_are_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logging.getLogger(gdal_lines.RASTERIO_LOGGER)
    with caplog.at_level(logging.WARNING):
        with gdal_lines.held() as kept:
            log.error("CPLE_AppDefined in first line")
            assert caplog.messages == []  # held back while the write runs
        assert caplog.messages == ["CPLE_AppDefined in first line"]  # passed on at the end
        caplog.clear()
        with gdal_lines.held() as kept:
            log.error("CPLE_FileIO in no space")
            log.error("CPLE_FileIO in no space")  # a repeat is said once
            log.warning("second")
            assert kept.suffix() == "; GDAL said: CPLE_FileIO in no space; second"
        assert caplog.messages == []  # folded into the error: not printed beside it
    with gdal_lines.held() as outer:
        with gdal_lines.held():
            log.error("inner")
        assert outer.lines == ["inner"]  # an inner block hands its lines to the outer one
        outer.suffix()

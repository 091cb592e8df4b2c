"""Sentinel-2 L2A time series with snow/cloud masks, from STAC catalogues or Sentinel Hub."""

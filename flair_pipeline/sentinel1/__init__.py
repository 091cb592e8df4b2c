"""Sentinel-1 VV/VH backscatter series, ascending and descending apart, from STAC catalogues or Sentinel Hub."""

"""The synthetic world: raw domains generated offline (ortho tiles, labels, DEMs, a Sentinel-2 archive)."""

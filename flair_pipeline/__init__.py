"""flair_pipeline: build a FLAIR-style land-cover dataset and train the FLAIR baselines.

The package is a plain core library (no Dagster, no DVC); `flair_pipeline.defs` and
`flair_pipeline.cli` are thin front doors over it (see docs/architecture.md).
"""

__version__ = "0.1.0"

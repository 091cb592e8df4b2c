"""Dagster front door: thin assets over the core library (docs/architecture.md)."""

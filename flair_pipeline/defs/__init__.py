"""Dagster front door: thin assets over the core library (DESIGN §2)."""

"""Orchestration helpers around the Dagster code location: instance, runs, UI, executors, DVC."""

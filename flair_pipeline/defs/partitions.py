"""Partitions: one per domain, added as domains arrive (by the CLI or the sensor)."""

import dagster as dg

DOMAINS = "domains"
domains_partitions = dg.DynamicPartitionsDefinition(name=DOMAINS)

"""Batches are dynamic partitions: the CLI and the automation sensor add one per run."""

from dagster import DynamicPartitionsDefinition

batch_partitions = DynamicPartitionsDefinition(name="batch")

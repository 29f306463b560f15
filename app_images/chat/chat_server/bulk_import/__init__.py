"""Bulk import of a directory (an OSS prefix or a NAS path mounted read-only) into a knowledge
base, one shard per pod of a Kubernetes Indexed Job: `python -m chat_server.bulk_import run`."""

from chat_server.bulk_import.worker import ImportConfigError, Interrupted, ShardReport, run_shard

__all__ = ["ImportConfigError", "Interrupted", "ShardReport", "run_shard"]

"""Bulk import of a directory (an OSS prefix or a NAS path mounted read-only) into a knowledge
base, one shard per pod of a Kubernetes Indexed Job: `python -m chat_server.bulk_import run`.
The entry is `chat_server.bulk_import.worker.run_shard`; the package itself imports nothing, so
`source` (file naming, shards) stays light for the 0.2 migrator."""

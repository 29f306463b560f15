"""`python -m chat_server.bulk_import run --knowledge-base NAME --source DIR --import-id ID`.

The shard comes from JOB_COMPLETION_INDEX (set by Kubernetes in an Indexed Job) and the shard
count from IMPORT_SHARD_COUNT (the Job's completions); both default to one shard of one, and
`--shard`/`--shard-count` override them by hand. Everything else is the chat pod's settings.
Exit status: 0 when the shard is done, failed files included (they are reported); 1 when the
database or the chat API is unavailable (Kubernetes retries the pod); 2 for wrong arguments or
settings (a retry cannot help); 143 after SIGTERM (stopped after the last stored batch).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from pathlib import Path

from chat_server.bulk_import.sinks import ImportRefused, Unavailable
from chat_server.bulk_import.wire import IMPORT_ID_PATTERN
from chat_server.bulk_import.worker import ImportConfigError, Interrupted, run_shard
from chat_server.logs import configure_logging

log = logging.getLogger("chat_server.bulk_import")


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    if not value:
        return default
    if not value.isdigit():
        raise ImportConfigError(f"{name}={value!r} is not a non-negative integer")
    return int(value)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m chat_server.bulk_import")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="import one shard of a directory into a knowledge base")
    run.add_argument("--knowledge-base", required=True, help="the KB's name (created if missing)")
    run.add_argument("--source", required=True, help="the directory to import (read-only)")
    run.add_argument("--import-id", required=True, help=f"names this import ({IMPORT_ID_PATTERN})")
    run.add_argument("--shard", type=int, default=None, help="default: JOB_COMPLETION_INDEX or 0")
    run.add_argument(
        "--shard-count", type=int, default=None, help="default: IMPORT_SHARD_COUNT or 1"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    args = parser().parse_args(argv)
    if not re.fullmatch(IMPORT_ID_PATTERN, args.import_id):
        log.error(
            "import refused",
            extra={"error": f"--import-id {args.import_id!r} must match {IMPORT_ID_PATTERN}"},
        )
        return 2
    try:
        shard = args.shard if args.shard is not None else _env_int("JOB_COMPLETION_INDEX", 0)
        count = (
            args.shard_count if args.shard_count is not None else _env_int("IMPORT_SHARD_COUNT", 1)
        )
        run_shard(
            args.knowledge_base,
            Path(args.source),
            args.import_id,
            shard,
            count,
            handle_sigterm=True,
        )
    except (ImportConfigError, ImportRefused) as exc:
        log.error("import refused", extra={"error": str(exc), "exit": 2})
        return 2
    except Unavailable as exc:
        log.error("import stopped: store unavailable", extra={"error": str(exc), "exit": 1})
        return 1
    except Interrupted:
        return 143
    return 0


if __name__ == "__main__":
    sys.exit(main())

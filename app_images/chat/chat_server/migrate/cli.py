"""Command line of the migrator; exit 0 all imported, 1 some files skipped, 2 usage/connection."""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import sys
from pathlib import Path

from chat_server.migrate.client import ApiRefused, ApiUnavailable, ChatApi
from chat_server.migrate.run import Migration, Options, State, same_name, summary, write_report
from chat_server.migrate.volume import read_volume

EXIT_OK, EXIT_SKIPPED, EXIT_USAGE = 0, 1, 2


def default_state(api_url: str, volume: Path) -> Path:
    """One state file per (service, volume) pair, under the user's state directory."""
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    key = hashlib.sha256(f"{api_url}\n{volume.resolve()}".encode()).hexdigest()[:16]
    return base / "chatchat-migrate" / f"{key}.json"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m chat_server.migrate",
        description="Import a Langchain-Chatchat 0.2 knowledge-base volume (knowledge_base/ "
        "with info.db and <kb>/content/) into this service, incrementally.",
    )
    p.add_argument("volume", type=Path, help="0.2's knowledge_base directory (or its parent)")
    p.add_argument("--api-url", default=os.environ.get("CHAT_API_URL", "http://127.0.0.1:7861"))
    p.add_argument(
        "--api-key", default=os.environ.get("CHAT_API_KEY"), help="default: $CHAT_API_KEY"
    )
    p.add_argument("--only", help="comma-separated knowledge base names")
    p.add_argument("--dry-run", action="store_true", help="list what would happen; write nothing")
    p.add_argument("--report", type=Path, help="write the JSON report here")
    p.add_argument(
        "--state",
        type=Path,
        help="state file (default: per service and volume, "
        "under $XDG_STATE_HOME or ~/.local/state/chatchat-migrate/)",
    )
    p.add_argument(
        "--no-state",
        action="store_true",
        help="no state: every file is sent and the service compares content",
    )
    p.add_argument(
        "--vs-type",
        choices=("faiss", "adb"),
        help="store of new knowledge bases (default: the service's DEFAULT_VS_TYPE)",
    )
    p.add_argument("--chunk-size", type=int)
    p.add_argument("--chunk-overlap", type=int)
    p.add_argument("--zh-title-enhance", action="store_true")
    p.add_argument("--batch-bytes", type=int, default=8 * 1024 * 1024)
    p.add_argument("--batch-files", type=int, default=16)
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per request")
    p.add_argument("--attempts", type=int, default=5, help="tries on connection errors and 5xx")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(message)s")
    if not args.api_key:
        p.error("no API key: pass --api-key or set CHAT_API_KEY")
    if args.batch_bytes < 1 or args.batch_files < 1 or args.attempts < 1:
        p.error("--batch-bytes, --batch-files and --attempts must be at least 1")
    try:
        volume = read_volume(args.volume)
    except OSError as exc:
        p.error(f"cannot read the volume {args.volume}: {exc}")
    only = None
    if args.only:
        only = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in only if not any(same_name(n, kb.name) for kb in volume.kbs)]
        if unknown:
            p.error(
                f"--only names knowledge bases the volume does not have: {', '.join(unknown)}"
                f" (it has: {', '.join(kb.name for kb in volume.kbs) or 'none'})"
            )
    split = {}
    if args.chunk_size is not None:
        split["chunk_size"] = str(args.chunk_size)
    if args.chunk_overlap is not None:
        split["chunk_overlap"] = str(args.chunk_overlap)
    if args.zh_title_enhance:
        split["zh_title_enhance"] = "true"
    state_path = None if args.no_state else args.state or default_state(args.api_url, args.volume)
    options = Options(only, args.dry_run, args.vs_type, split, args.batch_bytes, args.batch_files)
    api = ChatApi(args.api_url, args.api_key, args.timeout, args.attempts)
    try:
        report = Migration(api, State(state_path), options, sys.stderr).run(volume)
    except (ApiUnavailable, ApiRefused) as exc:
        print(f"error: {exc}; what was acknowledged is kept, run again to go on", file=sys.stderr)
        return EXIT_USAGE
    finally:
        api.close()
    report["state"] = str(state_path) if state_path else None
    write_report(report, args.report)
    print(summary(report))
    return EXIT_SKIPPED if report["totals"]["skipped"] else EXIT_OK

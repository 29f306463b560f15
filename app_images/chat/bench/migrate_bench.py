"""Time `python -m chat_server.migrate` over N small files: a first run, a re-run with its
state (uploads nothing) and a re-run without state (every file sent, the service embeds none).

    app_images/chat/.venv/bin/python app_images/chat/bench/migrate_bench.py --files 200
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import ApiProcess, minilm_dir  # noqa: E402
from tests.test_migrate import make_volume, migrate, report  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--files", type=int, default=200)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        (tmp / "api").mkdir()
        api = ApiProcess(tmp / "api", minilm_dir(), "http://127.0.0.1:9")  # no llm needed
        try:
            api.start()
            volume = make_volume(tmp / "old", bulk_files=args.files)
            rows = []
            for label, extra in [
                ("first run", ()),
                ("re-run (state)", ()),
                ("re-run (--no-state)", ("--no-state",)),
            ]:
                started = time.monotonic()
                run = migrate(api, volume, tmp, "--only", "samples", *extra)
                wall = time.monotonic() - started
                assert run.returncode == 0, run.stderr
                t = report(tmp)["totals"]
                rows.append({"run": label, "wall_s": round(wall, 2), **t})
        finally:
            api.stop()
    keys = ("uploaded_files", "chunks_embedded", "embedded", "unchanged")
    print("| run | wall s | " + " | ".join(keys) + " |")
    for row in rows:
        print(f"| {row['run']} | {row['wall_s']} | " + " | ".join(str(row[k]) for k in keys) + " |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()

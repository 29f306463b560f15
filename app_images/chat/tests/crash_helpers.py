"""Run tests/kb_writer.py as a real process, stop it at a named step, and check a KB after."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from chat_server.kb.service import IncomingFile, KnowledgeService, SplitParams, fingerprint
from chat_server.stores.base import FAULT_MARKER_ENV, FAULT_PAUSE_ENV
from chat_server.stores.pg_store import table_name

CHAT_DIR = Path(__file__).resolve().parent.parent
PARAMS = SplitParams(120, 20, False)  # the writer's split: fingerprints must match


def paragraph(tag: str) -> str:
    """A few sentences that only this tag's file contains (several chunks)."""
    return " ".join(
        f"Record {tag} number {i} tells how the {tag} valley keeps its {i * 7} orchards."
        for i in range(6)
    )


class Writer:
    """tests/kb_writer.py in its own process; `pause_at` is a fault point (see stores.base)."""

    def __init__(self, tmp: Path, spec: dict, pause_at: str = "") -> None:
        self.marker = tmp / f"marker-{time.monotonic_ns()}"
        spec_path = tmp / f"spec-{time.monotonic_ns()}.json"
        spec_path.write_text(json.dumps(spec))
        env = {**os.environ, "PYTHONPATH": str(CHAT_DIR), FAULT_MARKER_ENV: str(self.marker)}
        if pause_at:
            env[FAULT_PAUSE_ENV] = pause_at
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.kb_writer", str(spec_path)],
            cwd=CHAT_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def wait_paused(self, step: str, timeout_s: float = 180) -> None:
        """Block until the process sits at `step` (it must get there: else the test fails)."""
        ends = time.monotonic() + timeout_s
        while time.monotonic() < ends:
            if self.marker.exists() and step in self.marker.read_text():
                return
            if self.proc.poll() is not None:
                out = self.proc.stdout.read() if self.proc.stdout else ""
                raise AssertionError(f"writer exited {self.proc.returncode} before {step}: {out}")
            time.sleep(0.05)
        self.kill()
        raise AssertionError(f"writer never reached {step}")

    def resume(self) -> None:
        self.marker.unlink()

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        assert self.proc.wait(timeout=30) == -signal.SIGKILL

    def finish(self, timeout_s: float = 180) -> tuple[int, str]:
        out, _ = self.proc.communicate(timeout=timeout_s)
        return self.proc.returncode, out


def vector_ids(service: KnowledgeService, kb: str, conninfo: str | None) -> list[int]:
    kb_obj, _ = service.get_kb(kb)
    if kb_obj.vs_type == "faiss":
        return sorted(service._index(kb_obj).ids().tolist())  # noqa: SLF001 - the store itself
    assert conninfo is not None
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(f'SELECT id FROM "{table_name(kb)}"').fetchall()
    return sorted(int(r[0]) for r in rows)


def assert_consistent(service: KnowledgeService, kb: str, conninfo: str | None) -> dict[str, str]:
    """Every listed file is found by search; no vector without metadata; returns name -> fp."""
    _, meta = service.get_kb(kb)
    listed = {r.file_name: r.fingerprint for r in service.list_files(kb)}
    by_file = meta.chunk_ids_by_file(kb)
    assert set(by_file) == set(listed)
    assert vector_ids(service, kb, conninfo) == sorted(i for ids in by_file.values() for i in ids)
    for name, ids in by_file.items():
        for chunk in meta.get_chunks(kb, ids).values():
            hits = service.search(kb, chunk.content, top_k=3, score_threshold=2.0)
            assert chunk.id in [h.id for h in hits], f"{name} chunk {chunk.id} not searchable"
    return listed


def as_files(tmp: Path, files: dict[str, str]) -> list[IncomingFile]:
    """The texts as files on disk (as uploads are, spooled) for KnowledgeService.ingest."""
    directory = tmp / f"incoming-{time.monotonic_ns()}"
    directory.mkdir(parents=True)
    found = []
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
        found.append(IncomingFile.from_path(name, directory / name))
    return found


def fingerprints(files: dict[str, str]) -> dict[str, str]:
    return {name: fingerprint(text.encode(), PARAMS) for name, text in files.items()}

"""Document parsing in worker processes, bounded hard: a deadline that kills, a memory cap.

The cooperative checks of `chat_server.kb.loaders` (element counts, sizes, the parse
deadline between pages/rows/elements) come first, inside the worker; the pool adds what a
library stuck in one call cannot escape: the worker is killed (SIGKILL) PARSE_KILL_GRACE_S
after PARSE_DEADLINE_S, and its address space is capped (RLIMIT_AS = PARSE_MAX_MEMORY_BYTES).
Either way the caller gets a 413 naming the file and the bound, and the service lives on.

Workers are long-lived (one per PARSE_WORKERS slot, started on first use, replaced after a
kill, a crash or a MemoryError) and take a file's path (a spool or a stored file), so that
several threads may parse at once while the main process embeds (a pipelined ingestion).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pickle
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import chat_server
from chat_server.errors import ServiceError
from chat_server.kb.loaders import DocumentError, ParseLimits
from chat_server.kb.parse_worker import HEADER, MEMORY_EXIT, write_frame

log = logging.getLogger(__name__)
START_TIMEOUT_S = 120.0


class _WorkerGone(Exception):
    """The worker stopped answering: it passed the deadline or exited."""

    def __init__(self, timed_out: bool, returncode: int | None) -> None:
        super().__init__(timed_out, returncode)
        self.timed_out = timed_out
        self.returncode = returncode


class _Worker:
    def __init__(self, memory_bytes: int) -> None:
        package_root = str(Path(chat_server.__file__).resolve().parent.parent)
        path = os.environ.get("PYTHONPATH")
        env = {**os.environ, "PYTHONPATH": package_root + (os.pathsep + path if path else "")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "chat_server.kb.parse_worker", str(memory_bytes)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in = self.proc.stdin
        self._out = self.proc.stdout.fileno()
        try:
            reply = self._read(time.monotonic() + START_TIMEOUT_S)
            if reply[0] != "ready":
                raise RuntimeError(f"parse worker answered {reply!r} at start")
        except BaseException:
            self.kill()
            raise

    def _read_exact(self, size: int, ends: float) -> bytes:
        parts: list[bytes] = []
        while size:
            left = ends - time.monotonic()
            if left <= 0 or not select.select([self._out], [], [], left)[0]:
                raise _WorkerGone(True, None)
            chunk = os.read(self._out, min(size, 1 << 20))
            if not chunk:
                raise _WorkerGone(False, self.proc.wait())
            parts.append(chunk)
            size -= len(chunk)
        return b"".join(parts)

    def _read(self, ends: float) -> Any:
        (size,) = HEADER.unpack(self._read_exact(HEADER.size, ends))
        return pickle.loads(self._read_exact(size, ends))  # noqa: S301 - our worker's frames

    def run(self, job: tuple[str, str, dict[str, Any]], ends: float) -> Any:
        try:
            write_frame(self._in, job)
        except (BrokenPipeError, OSError):
            raise _WorkerGone(False, self.proc.wait()) from None
        return self._read(ends)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._in.close()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class ParsePool:
    """Parse documents in up to `workers` worker processes; see the module doc."""

    def __init__(
        self,
        limits: ParseLimits | None = None,
        workers: int = 2,
        memory_bytes: int = 2 * 1024 * 1024 * 1024,
        kill_grace_s: float = 5.0,
    ) -> None:
        self.limits = limits or ParseLimits()
        self.workers = workers
        self.memory_bytes = memory_bytes
        self.kill_grace_s = kill_grace_s
        self._slots = threading.BoundedSemaphore(workers)
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False

    def _take(self) -> _Worker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.proc.poll() is None:
                    return worker
                worker.kill()
        try:
            return _Worker(self.memory_bytes)
        except (OSError, RuntimeError, _WorkerGone) as exc:
            raise ServiceError(503, f"the document parser could not start: {exc}", 5) from exc

    def _give_back(self, worker: _Worker) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(worker)
                return
        worker.kill()

    def parse(self, name: str, path: Path, limits: ParseLimits | None = None) -> str:
        """The text of the document at `path` (named `name` in errors), or a DocumentError."""
        limits = limits or self.limits
        if self._closed:
            raise ServiceError(503, "the document parser is shut down", 5)
        job = (name, str(path), dataclasses.asdict(limits))
        with self._slots:  # waiting for a free worker is not charged to the deadline
            worker = self._take()
            hard_s = limits.deadline_s + self.kill_grace_s
            try:
                reply = worker.run(job, time.monotonic() + hard_s)
            except _WorkerGone as gone:
                worker.kill()
                raise self._gone_error(name, limits, hard_s, gone) from None
            except BaseException:
                worker.kill()  # mid-answer: its pipe is out of step
                raise
            self._give_back(worker)
        if reply[0] == "error":
            raise DocumentError(reply[1], reply[2])
        text: str = reply[1]
        return text

    def _memory_error(self, name: str) -> DocumentError:
        log.warning("parse worker over its memory limit", extra={"file": name})
        return DocumentError(
            413,
            f"file {name!r} needs more than {self.memory_bytes} bytes of memory to parse "
            "(PARSE_MAX_MEMORY_BYTES)",
        )

    def _gone_error(
        self, name: str, limits: ParseLimits, hard_s: float, gone: _WorkerGone
    ) -> DocumentError:
        if gone.timed_out:
            log.warning("parse worker killed at the deadline", extra={"file": name})
            return DocumentError(
                413,
                f"file {name!r} took longer than {limits.deadline_s:g}s to parse and was "
                f"stopped after {hard_s:g}s (PARSE_DEADLINE_S + PARSE_KILL_GRACE_S)",
            )
        code = gone.returncode
        if code == MEMORY_EXIT:
            return self._memory_error(name)
        how = f"signal {-code}" if code is not None and code < 0 else f"exit status {code}"
        log.warning("parse worker died", extra={"file": name, "how": how})
        if code is not None and code < 0 and -code in (signal.SIGKILL, signal.SIGSEGV):
            return DocumentError(
                413,
                f"file {name!r} could not be parsed: the parser process died ({how}), "
                f"most likely over its memory limit of {self.memory_bytes} bytes "
                "(PARSE_MAX_MEMORY_BYTES)",
            )
        return DocumentError(
            400, f"file {name!r} could not be parsed: the parser process died ({how})"
        )

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.kill()

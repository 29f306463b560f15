"""Uploads on local disk, never in memory: each file is copied in chunks to a spool file.

A spool file is hashed (sha256) and counted as it is written and refused (413) at the first
byte over the per-file cap. It lives in the spool directory (UPLOAD_SPOOL_DIR, default the
system temp dir, never the KB volume) and is removed when it is closed: after the request,
on an error and on a client disconnect. What a killed process left is removed at start-up.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.exceptions import HTTPException

SPOOL_PREFIX = "chat-upload-"
CHUNK = 1024 * 1024


class UploadTooLarge(HTTPException):
    """413 naming the file; an HTTPException so FastAPI's body parser lets it through."""

    def __init__(self, message: str) -> None:
        super().__init__(413, message)


def too_large(name: str, limit: int) -> UploadTooLarge:
    return UploadTooLarge(
        f"file {name!r} is larger than the limit of {limit} bytes (MAX_UPLOAD_BYTES)"
    )


@dataclass(frozen=True)
class IncomingFile:
    """One document to ingest: its name and where its bytes are (a spool or a stored file)."""

    name: str
    path: Path
    size: int
    sha256: str
    # The running hash of the bytes, so that a fingerprint can add the split parameters.
    hasher: Any = field(repr=False, compare=False)

    @classmethod
    def from_path(cls, name: str, path: Path) -> IncomingFile:
        """Hash a file already on disk (a stored original) in chunks."""
        hasher = hashlib.sha256()
        size = 0
        with path.open("rb") as f:
            while chunk := f.read(CHUNK):
                hasher.update(chunk)
                size += len(chunk)
        return cls(name, path, size, hasher.hexdigest(), hasher)


class SpoolFile:
    """A write-once temporary file that hashes, counts and caps what is written to it."""

    def __init__(self, name: str, directory: Path | None, limit: int) -> None:
        self.name = name
        self.limit = limit
        self.size = 0
        self._hasher = hashlib.sha256()
        self._file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed by its owner
            prefix=f"{SPOOL_PREFIX}{os.getpid()}-", dir=directory, delete=True
        )
        self.path = Path(self._file.name)

    def write(self, data: bytes) -> int:
        if self.size + len(data) > self.limit:
            raise too_large(self.name, self.limit)
        self._file.write(data)
        self._hasher.update(data)
        self.size += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def read(self, size: int = -1) -> bytes:
        return self._file.read(size)

    def tell(self) -> int:
        return self._file.tell()

    def flush(self) -> None:
        self._file.flush()

    @property
    def closed(self) -> bool:
        return self._file.closed

    def close(self) -> None:
        """Close and remove the spool file (idempotent)."""
        self._file.close()

    def incoming(self) -> IncomingFile:
        self._file.flush()
        return IncomingFile(
            self.name, self.path, self.size, self._hasher.hexdigest(), self._hasher.copy()
        )


class UploadSpool:
    """Spool files owned together (tests, the benchmark): removed on `close` / `with` exit."""

    def __init__(self, directory: Path | None = None, limit: int = 2**62) -> None:
        self.directory = directory
        self.limit = limit
        self.files: list[SpoolFile] = []

    def add_bytes(self, name: str, data: bytes) -> IncomingFile:
        spool = SpoolFile(name, self.directory, self.limit)
        self.files.append(spool)
        for start in range(0, len(data), CHUNK):
            spool.write(data[start : start + CHUNK])
        return spool.incoming()

    def close(self) -> None:
        for spool in self.files:
            spool.close()
        self.files.clear()

    def __enter__(self) -> UploadSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def remove_stale_spool_files(directory: Path | None) -> list[Path]:
    """Remove spool files whose process is gone (a kill -9 skips the removal on close)."""
    root = Path(directory or tempfile.gettempdir())
    removed = []
    for path in root.glob(f"{SPOOL_PREFIX}*"):
        pid = path.name[len(SPOOL_PREFIX) :].split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        try:
            path.unlink()
            removed.append(path)
        except OSError:
            continue
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

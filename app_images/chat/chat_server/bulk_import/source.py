"""The import source: a deterministic listing, the knowledge-base name of each file, shards.

Every pod of an Indexed Job lists the whole source and keeps the files of its own shard. A
file's shard is a stable hash of its knowledge-base name modulo the shard count: it depends on
that file alone, so a source that changes while the Job runs never moves a file to a second
shard (two writers of one file), and files that would share a name land in the same shard,
where the first in sort order wins and the others are reported. Contiguous slices of the
sorted list would shift every later file into another pod's slice when one file is added.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from chat_server.kb.loaders import DocumentError, validate_file_name

# The KB's file names are flat (no "/"): a nested file's directories are kept, joined by this
# character (U+2215 DIVISION SLASH), so `manuals/install.md` is listed as `manuals∕install.md`.
PATH_JOINER = "\u2215"


@dataclass(frozen=True)
class SourceFile:
    """A file found under the source root. `problem` says why it cannot be imported."""

    path: str  # relative to the root, "/"-separated
    file_name: str  # its name in the knowledge base ('' when it cannot have one)
    problem: str = ""

    def absolute(self, root: Path) -> Path:
        return root / self.path


def kb_file_name(relative: str) -> str:
    return relative.replace("/", PATH_JOINER)


def shard_of(file_name: str, shard_count: int) -> int:
    digest = hashlib.sha256(file_name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % shard_count


def _inside(root: Path, target: Path) -> bool:
    try:
        target.relative_to(root)
    except ValueError:
        return False
    return True


def list_source(root: Path) -> list[SourceFile]:
    """Every entry under `root` that is or looks like a file, sorted by relative path.

    Hidden files and directories (a leading dot, like `.git`) are not listed, nor are
    symlinked directories descended into (no cycles, no reading outside the root). A symlink to
    a file inside the root is imported under its own name; one that points outside the root, a
    dangling one, or anything that is not a regular file is listed with its problem, so that it
    is reported rather than left out unseen.
    """
    root = root.resolve()
    found: list[SourceFile] = []
    for directory, dirs, files in os.walk(root, followlinks=False):
        base = Path(directory)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for d in dirs:
            if (base / d).is_symlink():
                found.append(
                    _entry(root, base / d, "a symbolic link to a directory (not followed)")
                )
        dirs[:] = [d for d in dirs if not (base / d).is_symlink()]
        for name in files:
            if name.startswith("."):
                continue
            path = base / name
            problem = ""
            if path.is_symlink():
                target = path.resolve()
                if not _inside(root, target):
                    problem = "a symbolic link to a file outside the import source (not read)"
                elif not target.is_file():
                    problem = "a symbolic link that does not lead to a regular file"
            elif not path.is_file():
                problem = "not a regular file"
            found.append(_entry(root, path, problem))
    found.sort(key=lambda f: f.path)
    return found


def _entry(root: Path, path: Path, problem: str) -> SourceFile:
    relative = path.relative_to(root).as_posix()
    name = kb_file_name(relative)
    if not problem:
        try:
            validate_file_name(name)
        except DocumentError as exc:
            problem = exc.message
    return SourceFile(relative, name, problem)


def shard_files(files: list[SourceFile], shard: int, shard_count: int) -> list[SourceFile]:
    """The files of one shard, in listing order; of files sharing a KB name (only possible when
    a source name contains PATH_JOINER itself) the first keeps it, the others get a problem."""
    if not 0 <= shard < shard_count:
        raise ValueError(f"shard {shard} is not in 0..{shard_count - 1} (IMPORT_SHARD_COUNT)")
    mine: list[SourceFile] = []
    owner: dict[str, str] = {}
    for f in files:
        if shard_of(f.file_name, shard_count) != shard:
            continue
        first = owner.setdefault(f.file_name, f.path)
        if first != f.path and not f.problem:
            f = SourceFile(f.path, f.file_name, f"has the same knowledge-base name as {first!r}")
        mine.append(f)
    return mine

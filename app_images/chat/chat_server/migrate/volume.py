"""A Langchain-Chatchat 0.2 knowledge-base volume, read without writing a byte to it.

The layout, as 0.2.10 (commit 9c525b7fa5b99437cf4d5167a7d062ef778a94b1) makes it
(`configs/kb_config.py.example`, `server/knowledge_base/utils.py`, `server/db/models/`):

    KB_ROOT_PATH/info.db                                SQLite: knowledge_base, knowledge_file
    KB_ROOT_PATH/<kb_name>/content/**                   the uploaded files, subdirectories too
    KB_ROOT_PATH/<kb_name>/vector_store/<embed_model>/  faiss: index.faiss + index.pkl

Only `content/` and `info.db` are read. The faiss stores are not imported: this service embeds
again with the deployment's model, and their `index.pkl` (the chunk texts) is a pickle, which
is never loaded from an untrusted volume.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from chat_server.bulk_import.source import PATH_JOINER, kb_file_name

# 0.2's `list_files_from_folder` skips entries whose lower-cased name starts with one of these.
IGNORED_PREFIXES = ("temp", "tmp", ".", "~$")
# A file in a subdirectory keeps its path in 0.2 (`a/b.md`); this service takes plain names.
# The same rule as the bulk import's (one KB filled both ways names a file once): `/` -> `∕`.
SUBDIR_JOIN = PATH_JOINER


@dataclass(frozen=True)
class VolumeFile:
    source: str  # 0.2's file name: the path under content/, posix
    name: str  # the file's name in this service
    path: Path
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Note:
    """Something about a file (or, with file "", the KB) that the report tells the user."""

    file: str
    kind: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"file": self.file, "kind": self.kind, "detail": self.detail}


@dataclass
class VolumeKb:
    name: str
    kb_info: str | None = None  # from info.db; None without one
    files: list[VolumeFile] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)  # nothing importable is lost by these
    skipped: list[Note] = field(default_factory=list)  # importable content left behind


@dataclass
class InfoDb:
    kb_info: dict[str, str]
    vector_stores: dict[str, tuple[str, str]]  # kb name -> (vs_type, embed_model)
    files: dict[str, dict[str, bool]]  # kb name -> {0.2 file name: custom_docs}


@dataclass
class Volume:
    root: Path
    kbs: list[VolumeKb]
    notes: list[Note]
    has_info_db: bool


def service_file_name(source: str) -> str:
    """`a/b.md` -> `a∕b.md` (U+2215): the service refuses path separators in file names."""
    return kb_file_name(source)


def find_root(path: Path) -> Path:
    """The directory holding info.db and the KB folders: `path`, or its `knowledge_base/`."""
    inner = path / "knowledge_base"
    if not (path / "info.db").is_file() and inner.is_dir():
        return inner
    return path


def read_info_db(path: Path) -> InfoDb:
    """0.2's tables, opened read-only and immutable (the volume is mounted read-only)."""
    uri = f"{path.resolve().as_uri()}?mode=ro&immutable=1"
    conn = sqlite3.connect(uri, uri=True)
    try:
        info: dict[str, str] = {}
        stores: dict[str, tuple[str, str]] = {}
        for kb_name, kb_info, vs_type, embed_model in conn.execute(
            "SELECT kb_name, kb_info, vs_type, embed_model FROM knowledge_base"
        ):
            if isinstance(kb_name, str):
                info[kb_name] = kb_info or ""
                stores[kb_name] = (vs_type or "", embed_model or "")
        files: dict[str, dict[str, bool]] = {}
        for kb_name, file_name, custom in conn.execute(
            "SELECT kb_name, file_name, custom_docs FROM knowledge_file"
        ):
            if isinstance(kb_name, str) and isinstance(file_name, str):
                files.setdefault(kb_name, {})[file_name] = bool(custom)
        return InfoDb(info, stores, files)
    finally:
        conn.close()


def _walk(directory: Path, prefix: str, kb: VolumeKb) -> Iterator[tuple[str, Path, os.stat_result]]:
    """Regular files under `directory` as (0.2 file name, path, stat), in a stable order."""
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as exc:
        kb.skipped.append(Note(prefix.rstrip("/"), "unreadable", f"cannot list: {exc}"))
        return
    for entry in entries:
        source = prefix + entry.name
        if entry.name.lower().startswith(IGNORED_PREFIXES):
            kb.notes.append(
                Note(
                    source,
                    "ignored",
                    "0.2 ignores names starting with "
                    + (", ".join(repr(p) for p in IGNORED_PREFIXES))
                    + "; not imported",
                )
            )
            continue
        if entry.is_symlink():
            kb.skipped.append(Note(source, "symlink", "a symbolic link: not followed"))
            continue
        try:
            st = entry.stat()
        except OSError as exc:
            kb.skipped.append(Note(source, "unreadable", str(exc)))
            continue
        if stat.S_ISDIR(st.st_mode):
            yield from _walk(Path(entry.path), source + "/", kb)
        elif stat.S_ISREG(st.st_mode):
            yield source, Path(entry.path), st


def _read_kb(root: Path, name: str, info: InfoDb | None) -> VolumeKb:
    kb = VolumeKb(name, kb_info=info.kb_info.get(name) if info else None)
    listed = info.files.get(name, {}) if info else {}
    content = root / name / "content"
    by_name: dict[str, str] = {}
    found: set[str] = set()
    if content.is_dir():
        for source, path, st in _walk(content, "", kb):
            found.add(source)
            target = service_file_name(source)
            # Two names that differ only in case, or `a/b.md` beside `a∕b.md`, would collide.
            key = unicodedata.normalize("NFC", target)
            if key in by_name:
                kb.skipped.append(
                    Note(
                        source,
                        "name_collision",
                        f"its name here, {target!r}, is taken by "
                        f"{by_name[key]!r} of the same knowledge base",
                    )
                )
                continue
            by_name[key] = source
            kb.files.append(VolumeFile(source, target, path, st.st_size, st.st_mtime_ns))
            if info is not None and source not in listed:
                kb.notes.append(
                    Note(
                        source,
                        "not_in_info_db",
                        "on disk but not listed in "
                        "info.db; imported (0.2's rebuild at start would load it)",
                    )
                )
            if listed.get(source):
                kb.notes.append(
                    Note(
                        source,
                        "custom_docs",
                        "its chunks were edited in 0.2; "
                        "the edited chunks live only in the faiss pickle, which is "
                        "never loaded: custom chunks not migrated, re-uploaded "
                        "from content",
                    )
                )
    elif name in (info.kb_info if info else {}):
        kb.notes.append(Note("", "no_content", "listed in info.db without a content/ directory"))
    for source in sorted(set(listed) - found):
        kb.notes.append(Note(source, "missing", "listed in info.db but not on the volume"))
    stores = root / name / "vector_store"
    if stores.is_dir():
        for store in sorted(p.name for p in stores.iterdir()):
            kb.notes.append(
                Note(
                    "",
                    "vector_store",
                    f"vector_store/{store}: 0.2's index is not "
                    "imported; the files are embedded again with this deployment's "
                    "model",
                )
            )
    elif info is not None and name in info.vector_stores:
        vs_type, model = info.vector_stores[name]
        if vs_type and vs_type != "faiss":
            kb.notes.append(
                Note(
                    "",
                    "vector_store",
                    f"0.2 kept its vectors in {vs_type} "
                    f"({model}); not imported, the files are embedded again",
                )
            )
    return kb


def read_volume(path: Path) -> Volume:
    """Every knowledge base of the volume: its folders (0.2's own rule) and info.db's rows."""
    root = find_root(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{path} is not a directory")
    notes: list[Note] = []
    info: InfoDb | None = None
    db = root / "info.db"
    if db.is_file():
        try:
            info = read_info_db(db)
        except sqlite3.Error as exc:
            notes.append(
                Note(
                    "info.db",
                    "info_db_unreadable",
                    f"{exc}; KB names are taken from "
                    "the folders, descriptions and file lists are not known",
                )
            )
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    names: list[str] = []
    for folder in folders:
        if (root / folder / "content").is_dir() or (info and folder in info.kb_info):
            names.append(folder)
        else:
            notes.append(Note(folder, "not_a_kb", "a folder without content/: not imported"))
    if info is not None:
        names += sorted(set(info.kb_info) - set(names))
    return Volume(root, [_read_kb(root, n, info) for n in names], notes, info is not None)

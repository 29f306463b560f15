"""One migration: the volume's knowledge bases into the service, batch by batch, resumable.

Every write goes through the service's API, so the service stays the only writer of its
stores and applies its own rules (names, file types, sizes, limits). A file is uploaded when
the service does not list it, or when the local state does not record the same size, mtime
and split for it as acknowledged; the service itself answers `unchanged_files` (by content
fingerprint) for what it holds already, so even a run without state embeds nothing twice.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from chat_server.migrate.client import ApiRefused, ChatApi, Upload
from chat_server.migrate.volume import Note, Volume, VolumeFile, VolumeKb


def same_name(a: str, b: str) -> bool:
    """As the service compares KB names: NFC, case-insensitive."""
    return unicodedata.normalize("NFC", a).casefold() == unicodedata.normalize("NFC", b).casefold()


class State:
    """What the service acknowledged, per KB and file: [size, mtime_ns, split]. Saved whole,
    atomically, after every batch, so a run killed at any moment resumes where it was."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.data: dict[str, Any] = {"version": 1, "kbs": {}}
        if path is not None and path.is_file():
            try:
                loaded = json.loads(path.read_text())
                if isinstance(loaded, dict) and isinstance(loaded.get("kbs"), dict):
                    self.data = loaded
            except (OSError, ValueError):
                pass  # an unreadable state only costs transfers: the service compares content

    def _kb(self, kb: str) -> dict[str, Any]:
        entry: dict[str, Any] = self.data["kbs"].setdefault(kb, {"files": {}})
        return entry

    def known(self, kb: str, f: VolumeFile, split: str) -> bool:
        return self._kb(kb)["files"].get(f.name) == [f.size, f.mtime_ns, split]

    def remember(self, kb: str, files: list[VolumeFile], split: str) -> None:
        for f in files:
            self._kb(kb)["files"][f.name] = [f.size, f.mtime_ns, split]

    def kb_info(self, kb: str) -> str | None:
        info = self._kb(kb).get("kb_info")
        return info if isinstance(info, str) else None

    def set_kb_info(self, kb: str, info: str) -> None:
        self._kb(kb)["kb_info"] = info

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".migrate-state-")
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(self.data, out, ensure_ascii=False)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


@dataclass
class KbReport:
    name: str
    kb: str = ""  # created | existing | would_create | refused
    kb_info: str = "none"  # set | unchanged | would_set | none
    embedded: list[str] = field(default_factory=list)  # new in the service
    updated: list[str] = field(default_factory=list)  # listed before with other content
    unchanged: list[str] = field(default_factory=list)
    would_upload: list[str] = field(default_factory=list)  # --dry-run
    skipped: list[dict[str, Any]] = field(default_factory=list)
    notes: list[dict[str, str]] = field(default_factory=list)
    uploaded_files: int = 0
    uploaded_bytes: int = 0
    chunks_embedded: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Options:
    only: list[str] | None = None
    dry_run: bool = False
    vs_type: str | None = None
    split: dict[str, str] = field(default_factory=dict)
    batch_bytes: int = 8 * 1024 * 1024
    batch_files: int = 16


def batches(files: list[VolumeFile], max_bytes: int, max_files: int) -> Iterator[list[VolumeFile]]:
    """Runs of files under both bounds; a file bigger than `max_bytes` goes alone."""
    batch: list[VolumeFile] = []
    size = 0
    for f in files:
        if batch and (size + f.size > max_bytes or len(batch) >= max_files):
            yield batch
            batch, size = [], 0
        batch.append(f)
        size += f.size
    if batch:
        yield batch


class Migration:
    def __init__(self, api: ChatApi, state: State, options: Options, progress: TextIO) -> None:
        self.api = api
        self.state = state
        self.options = options
        self.progress = progress
        self.split_key = json.dumps(options.split, sort_keys=True)

    def say(self, line: str) -> None:
        print(line, file=self.progress, flush=True)

    def run(self, volume: Volume) -> dict[str, Any]:
        started = time.monotonic()
        kbs = volume.kbs
        if self.options.only is not None:
            kbs = [kb for kb in kbs if any(same_name(kb.name, n) for n in self.options.only)]
        existing = self.api.list_kbs()
        reports = []
        for number, kb in enumerate(kbs, 1):
            reports.append(self.migrate_kb(kb, existing, f"[kb {number}/{len(kbs)}]"))
        totals = {
            key: sum(len(getattr(r, key)) for r in reports)
            for key in ("embedded", "updated", "unchanged", "would_upload", "skipped")
        }
        for key in ("uploaded_files", "uploaded_bytes", "chunks_embedded"):
            totals[key] = sum(getattr(r, key) for r in reports)
        totals["knowledge_bases"] = len(reports)
        return {
            "volume": str(volume.root),
            "api_url": self.api.base_url,
            "dry_run": self.options.dry_run,
            "info_db": volume.has_info_db,
            "seconds": round(time.monotonic() - started, 2),
            "totals": totals,
            "knowledge_bases": [r.as_dict() for r in reports],
            "volume_notes": [n.as_dict() for n in volume.notes],
        }

    def migrate_kb(self, kb: VolumeKb, existing: list[str], tag: str) -> KbReport:
        report = KbReport(kb.name, notes=[n.as_dict() for n in kb.notes])
        report.skipped = [{**n.as_dict(), "name": "", "status": None} for n in kb.skipped]
        total = len(kb.files) + len(kb.skipped)
        self.say(f"{tag} {kb.name}: 0/{total} files")
        name = next((n for n in existing if same_name(n, kb.name)), None)
        if name is None and self.options.dry_run:
            report.kb = "would_create"
        elif name is None:
            try:
                self.api.create_kb(kb.name, self.options.vs_type)
                report.kb, name = "created", kb.name
            except ApiRefused as exc:
                if exc.status != 409:  # 409: made meanwhile, or under another case
                    report.kb = "refused"
                    reason = f"knowledge base refused: {exc}"
                    report.skipped += [skip(f, exc.status, reason) for f in kb.files]
                    self.say(f"{tag} {kb.name}: refused by the service: {exc}")
                    return report
                name = next((n for n in self.api.list_kbs() if same_name(n, kb.name)), kb.name)
                report.kb = "existing"
        else:
            report.kb = "existing"
        self.set_info(kb, name, report)
        listed = (
            set(self.api.list_files(name)) if name is not None and report.kb != "created" else set()
        )
        todo: list[VolumeFile] = []
        for f in kb.files:
            if f.name in listed and self.state.known(kb.name, f, self.split_key):
                report.unchanged.append(f.name)
            elif self.options.dry_run:
                report.would_upload.append(f.name)
            else:
                todo.append(f)
        done = len(report.unchanged) + len(report.skipped) + len(report.would_upload)
        for batch in batches(todo, self.options.batch_bytes, self.options.batch_files):
            assert name is not None
            self.upload(name, kb.name, batch, listed, report)
            done += len(batch)
            self.say(f"{tag} {kb.name}: {done}/{total} files")
        if not todo:
            self.say(f"{tag} {kb.name}: {done}/{total} files")
        return report

    def set_info(self, kb: VolumeKb, name: str | None, report: KbReport) -> None:
        if not kb.kb_info:
            return
        if self.state.kb_info(kb.name) == kb.kb_info and report.kb == "existing":
            report.kb_info = "unchanged"
        elif self.options.dry_run:
            report.kb_info = "would_set"
        else:
            assert name is not None
            self.api.update_info(name, kb.kb_info)
            self.state.set_kb_info(kb.name, kb.kb_info)
            self.state.save()
            report.kb_info = "set"

    def upload(
        self, name: str, key: str, batch: list[VolumeFile], listed: set[str], report: KbReport
    ) -> None:
        """One request; when the service refuses it, each file alone, so one bad file is
        reported with the service's reason and never holds back the rest."""
        try:
            answer = self.api.upload(
                Upload(name, [(f.name, f.path) for f in batch], self.options.split)
            )
        except ApiRefused as exc:
            if len(batch) > 1:
                for f in batch:
                    self.upload(name, key, [f], listed, report)
            else:
                report.skipped.append(skip(batch[0], exc.status, exc.reason))
            return
        report.uploaded_files += len(batch)
        report.uploaded_bytes += sum(f.size for f in batch)
        report.chunks_embedded += int(answer.get("chunks", 0))
        embedded = set(answer.get("embedded_files", []))
        unchanged = set(answer.get("unchanged_files", []))
        acknowledged = []
        for f in batch:
            if f.name in embedded:
                (report.updated if f.name in listed else report.embedded).append(f.name)
            elif f.name in unchanged:
                report.unchanged.append(f.name)
            else:
                reason = f"the service answered neither embedded nor unchanged: {answer}"
                report.skipped.append(skip(f, None, reason))
                continue
            acknowledged.append(f)
        self.state.remember(key, acknowledged, self.split_key)
        self.state.save()


def skip(f: VolumeFile, status: int | None, reason: str) -> dict[str, Any]:
    return {**Note(f.source, "refused", reason).as_dict(), "name": f.name, "status": status}


def summary(report: dict[str, Any]) -> str:
    """The report for a person: one line per KB, then each skipped file and note."""
    lines = []
    for kb in report["knowledge_bases"]:
        counts = ", ".join(
            f"{len(kb[key])} {key.replace('_', ' ')}"
            for key in ("embedded", "updated", "unchanged", "would_upload", "skipped")
            if kb[key] or key in ("embedded", "unchanged", "skipped")
        )
        lines.append(f"{kb['name']}: {kb['kb']}, description {kb['kb_info']}; {counts}")
        for s in kb["skipped"]:
            status = f"{s['status']} " if s["status"] else ""
            lines.append(f"  skipped {s['file']}: {status}{s['detail']}")
        for n in kb["notes"]:
            lines.append(f"  note {n['file'] or '(knowledge base)'}: {n['detail']}")
    for n in report["volume_notes"]:
        lines.append(f"note {n['file']}: {n['detail']}")
    t = report["totals"]
    lines.append(
        f"total: {t['knowledge_bases']} knowledge bases, {t['embedded']} embedded, "
        f"{t['updated']} updated, {t['unchanged']} unchanged, {t['skipped']} skipped; "
        f"{t['uploaded_files']} files ({t['uploaded_bytes']} bytes) uploaded, "
        f"{t['chunks_embedded']} chunks embedded, {report['seconds']} s"
        + (f"; {t['would_upload']} would be uploaded (dry run)" if report["dry_run"] else "")
    )
    return "\n".join(lines)


def write_report(report: dict[str, Any], path: Path | None) -> None:
    if path is None:
        return
    path.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n")

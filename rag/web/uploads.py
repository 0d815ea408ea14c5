"""The Documents tab's work: uploads checked, copied into `data_dir/uploads` and ingested;
documents listed and deleted (with their uploaded copy)."""

from __future__ import annotations

import logging
import re
import shutil
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.config import Settings
from rag.ingest import SUPPORTED_SUFFIXES
from rag.security import redact
from rag.web.chat import EngineLike
from rag.web.render import esc

log = logging.getLogger(__name__)

_UNSAFE_NAME = re.compile(r"[^\w.-]+")


class UploadError(ValueError):
    """An upload was refused; the message is shown to the user as is."""


def sanitize_filename(name: str) -> str:
    """Basename only; letters and digits of any script and `._-`; no leading dots; at most
    150 bytes of UTF-8 in the stem (file systems allow 255)."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = unicodedata.normalize("NFKC", base)
    base = _UNSAFE_NAME.sub("_", base).strip("._ ")
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    stem = stem.strip("._ ").encode()[:150].decode(errors="ignore") or "upload"
    return f"{stem}.{ext.lower()[:10]}" if ext else stem


def uploads_dir(settings: Settings) -> Path:
    return settings.data_dir / "uploads"


def _unique(name: str, taken: set[str]) -> str:
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    candidate, i = name, 1
    while candidate in taken:
        candidate = f"{stem}-{i}.{ext}" if ext else f"{stem}-{i}"
        i += 1
    taken.add(candidate)
    return candidate


def validate_uploads(paths: Sequence[str | Path], settings: Settings) -> list[tuple[Path, str]]:
    """(source, safe name) per file, or UploadError listing every problem; nothing is copied."""
    if not paths:
        raise UploadError("No files were uploaded.")
    if len(paths) > settings.max_upload_files:
        raise UploadError(
            f"Too many files: {len(paths)} (at most {settings.max_upload_files} per upload)."
        )
    problems, planned, taken = [], [], set()
    limit = settings.max_upload_mb * 1024 * 1024
    for raw in paths:
        source = Path(raw)
        name = sanitize_filename(source.name)
        ext = Path(name).suffix.lower()
        if ext not in SUPPORTED_SUFFIXES:
            problems.append(f"{name}: unsupported type (allowed: {', '.join(SUPPORTED_SUFFIXES)})")
        elif not source.is_file():
            problems.append(f"{name}: the upload did not arrive")
        elif source.stat().st_size > limit:
            problems.append(f"{name}: larger than {settings.max_upload_mb} MB")
        else:
            planned.append((source, _unique(name, taken)))
    if problems:
        raise UploadError("Nothing was added.\n" + "\n".join(f"- {esc(p)}" for p in problems))
    return planned


@dataclass
class Staged:
    """A file copied into the uploads folder, with what it replaced (to undo a failed ingest)."""

    path: Path
    previous: bytes | None

    def undo(self) -> None:
        if self.previous is None:
            self.path.unlink(missing_ok=True)
        else:
            self.path.write_bytes(self.previous)


def stage_uploads(planned: Sequence[tuple[Path, str]], settings: Settings) -> list[Staged]:
    """Copy validated uploads into `data_dir/uploads` so the knowledge base owns its copies."""
    target = uploads_dir(settings)
    target.mkdir(parents=True, exist_ok=True)
    staged = []
    for source, name in planned:
        dest = target / name
        previous = dest.read_bytes() if dest.is_file() else None
        shutil.copyfile(source, dest)
        staged.append(Staged(dest, previous))
    return staged


def _same_file(a: object, b: Path) -> bool:
    try:
        return Path(str(a)).resolve() == b.resolve()
    except OSError:
        return False


def human_size(size: int | None) -> str:
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KB", "MB"):
        if value < 1024 or unit == "MB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return ""


def _added(added: str | None) -> str:
    """ISO 8601 UTC as "2026-12-02 15:44" (minutes are enough to tell versions apart)."""
    return (added or "").replace("T", " ")[:16]


def ingest_uploads(
    engine: EngineLike,
    paths: Sequence[str | Path],
    settings: Settings,
    progress: Callable[[int, int, str], None] | None = None,
) -> str:
    """Validate, copy and ingest; returns a summary of every file. Files that fail change
    nothing. `progress(done, total, name)` is told as each file is read."""
    try:
        staged = stage_uploads(validate_uploads(paths, settings), settings)
    except UploadError as exc:
        return str(exc)
    try:
        report = engine.kb.ingest([s.path for s in staged], progress=progress)
    except Exception as exc:
        for s in staged:
            s.undo()
        log.warning("ingest failed: %s", redact(repr(exc), settings))
        return f"Nothing was added: {esc(redact(str(exc), settings))}"
    errors = report.errors
    failed = 0
    for s in staged:
        if any(_same_file(e.path, s.path) for e in errors):
            failed += 1
            s.undo()
    lines = [
        f"Added {len(report.added)}, updated {len(report.updated)}, "
        f"unchanged {len(report.unchanged)} ({report.chunks} chunks)."
    ]
    if failed == len(staged):
        lines = ["Nothing was added:"]
    elif failed:
        lines.append(f"{failed} of {len(staged)} files could not be added:")
    lines += [f"- {esc(e.message)}" for e in errors]  # the message names its file
    return "\n".join(lines)


DOCUMENT_HEADERS = ["Name", "Type", "Size", "Chunks", "Added", "ID"]


def document_rows(engine: EngineLike) -> list[list[Any]]:
    """The documents table: file name and type (never the server's path), size, chunks,
    when it was added, id."""
    return [
        [d.file_name, d.file_type, human_size(d.size), d.chunks, _added(d.added), d.doc_id]
        for d in engine.kb.documents()
    ]


def delete_document(engine: EngineLike, doc_id: str, settings: Settings) -> str:
    """Delete one document by id, and our uploaded copy of it if there is one."""
    doc_id = (doc_id or "").strip()
    if not doc_id:
        return "Enter a document id (click a row to fill it in)."
    doc = next((d for d in engine.kb.documents() if d.doc_id == doc_id), None)
    if not engine.kb.delete(doc_id):
        return f"No document with id {esc(doc_id)}."
    path = doc.path if doc else None
    if path:
        upload = Path(str(path)).resolve()
        if upload.is_relative_to(uploads_dir(settings).resolve()):
            upload.unlink(missing_ok=True)
    title = doc.title if doc else doc_id
    return f"Deleted {esc(title)}."

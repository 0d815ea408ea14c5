"""What the knowledge base reports: documents, ingest outcomes, errors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

Progress = Callable[[int, int, str], None]  # (done, total, current doc)


class IndexMismatchError(RuntimeError):
    """The collection was built with other embedding or chunking settings."""


@dataclass(frozen=True)
class DocumentInfo:
    doc_id: str
    title: str
    chunks: int
    content_hash: str
    published: str | None = None
    source: str | None = None
    path: str | None = None
    size: int | None = None  # bytes of the file it was read from
    added: str | None = None  # when this version was stored (UTC, ISO 8601)

    @property
    def file_name(self) -> str:
        return Path(self.path or self.doc_id).name

    @property
    def file_type(self) -> str:
        return Path(self.path or self.doc_id).suffix.lower().lstrip(".")


@dataclass(frozen=True)
class FileError:
    path: str
    message: str


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    errors: list[FileError] = field(default_factory=list)
    chunks: int = 0  # chunks written by this run

    @property
    def ok(self) -> bool:
        return not self.errors

"""A document as rag holds it once read and cleaned."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


class IngestError(ValueError):
    """A file that cannot be ingested; the message says why, in words for the user."""


@dataclass
class LoadedDocument:
    doc_id: str
    text: str  # cleaned
    title: str
    published: str | None = None
    source: str | None = None
    path: str | None = None
    title_from_text: bool = False  # a title derived from the first line adds nothing to embed
    size: int | None = None  # bytes of the file it was read from

    @property
    def content_hash(self) -> str:
        key = "\x1f".join([self.text, self.title, self.published or "", self.source or ""])
        return hashlib.sha256(key.encode()).hexdigest()

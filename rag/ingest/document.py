"""A document as rag holds it once read and cleaned."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from rag.ingest.structure import Heading, Sections, page_at


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
    pages: tuple[int, ...] = ()  # start offset of each page (paged formats), page 1 first
    headings: tuple[Heading, ...] = ()
    _sections: Sections | None = field(default=None, init=False, repr=False, compare=False)

    def page_at(self, offset: int) -> int | None:
        return page_at(self.pages, offset)

    def section_at(self, offset: int) -> str | None:
        # built once for these headings (every chunk, every cited passage looks one up)
        if self._sections is None or self._sections.headings is not self.headings:
            self._sections = Sections(self.headings)
        return self._sections.at(offset)

    @property
    def content_hash(self) -> str:
        parts = [self.text, self.title, self.published or "", self.source or ""]
        if self.pages or self.headings:  # structure counts only where a reader found some
            parts.append(repr((self.pages, [(h.start, h.level, h.title) for h in self.headings])))
        key = "\x1f".join(parts)
        return hashlib.sha256(key.encode()).hexdigest()

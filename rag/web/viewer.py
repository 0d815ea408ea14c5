"""The document viewer: a cited document opened where its citation points.

Only documents the knowledge base lists are opened, found by doc_id through its public API;
the page never names a path. A PDF's cited page is rendered to an image on the server
(pypdfium2), because browsers' built-in PDF viewers cannot be relied on to honour `#page=N`;
other documents show their cleaned text (what the citation offsets index) with the span marked.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.events import Citation
from rag.web.render import esc, highlight_span, source_location

log = logging.getLogger(__name__)

RENDER_SCALE = 1.5  # 108 dpi: body text of a letter page stays legible in the panel


@dataclass
class Viewed:
    """What the viewer shows: a heading, a page image (PDFs) and HTML beside it."""

    heading: str
    image: Any = None  # PIL.Image of the page
    html: str = ""
    page: int | None = None
    pages: int | None = None
    error: str | None = None


def find_document(kb: Any, doc_id: str) -> Any | None:
    """The knowledge base's record of a document, or None if it holds no such document."""
    return next((d for d in kb.documents() if d.doc_id == doc_id), None)


def render_pdf_page(path: Path, page: int) -> tuple[Any, int, int]:
    """(image, page shown, page count); a page out of range is clamped into it."""
    import pypdfium2

    pdf = pypdfium2.PdfDocument(str(path))
    try:
        count = len(pdf)
        shown = max(1, min(count, page))
        image = pdf[shown - 1].render(scale=RENDER_SCALE).to_pil()
        return image, shown, count
    finally:
        pdf.close()


def _text_with_span(text: str, citation: Citation) -> str:
    start = max(0, min(len(text), citation.start))
    end = max(start, min(len(text), citation.end))
    if text[start:end] != citation.span or start == end:
        # offsets that do not index this text (a re-ingested file): show the passage alone
        return f'<div class="doc-text">{highlight_span(citation)}</div>'
    return (
        f'<div class="doc-text">{esc(text[:start])}<mark id="rag-viewer-mark">'
        f"{esc(text[start:end])}</mark>{esc(text[end:])}</div>"
    )


def open_citation(kb: Any, citation: Citation, page: int | None = None) -> Viewed:
    """The viewer's content for one citation; `page` browses a PDF away from the cited one."""
    doc = find_document(kb, citation.doc_id)
    if doc is None:
        return Viewed(citation.title, error="This document is no longer in the knowledge base.")
    heading = source_location(citation, doc.file_name)
    passage = (
        f'<div class="viewer-passage"><h4>Cited passage</h4>'
        f'<div class="passage">{highlight_span(citation)}</div></div>'
    )
    path = Path(doc.path) if doc.path else None
    if doc.file_type == "pdf" and path is not None and path.is_file():
        wanted = page or citation.page or 1
        try:
            image, shown, count = render_pdf_page(path, wanted)
        except Exception as exc:  # a damaged or replaced file: say so, keep the passage
            log.warning("could not render %s: %s", doc.file_name, exc)
            return Viewed(heading, html=passage, error="The PDF could not be rendered.")
        return Viewed(heading, image=image, html=passage, page=shown, pages=count)
    text = kb.document_text(citation.doc_id)
    if text is None:
        return Viewed(heading, html=passage, error="The document's text is not available.")
    return Viewed(heading, html=_text_with_span(text, citation))

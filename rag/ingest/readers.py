"""Reading one file into a cleaned document with its structure (pages, headings).

Plain text and Markdown are decoded here; PDF (pdfium), HTML (Beautiful Soup) and DOCX
(python-docx) have readers of their own that keep pages and headings, which llama-index's file
readers flatten away. Every offset recorded indexes the cleaned text that is chunked."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from rag.ingest.clean import clean_text, derive_title
from rag.ingest.document import IngestError, LoadedDocument
from rag.ingest.formats import HTML_SUFFIXES, MARKDOWN_SUFFIXES, SUPPORTED_SUFFIXES
from rag.ingest.structure import Heading, markdown_headings, numbered_headings

PAGE_SEPARATOR = "\n\n"


def _read_text_file(path: Path, data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise IngestError(f"{path.name}: looks binary (contains NUL bytes), not a text file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IngestError(
            f"{path.name}: not UTF-8 text (invalid byte at position {exc.start}); "
            "save it as UTF-8 and try again"
        ) from exc


def _cannot_read(path: Path, exc: Exception) -> IngestError:
    kind = path.suffix.lower()[1:].upper()
    return IngestError(f"{path.name}: cannot be read as {kind} ({exc or type(exc).__name__})")


def _quietly(read, path: Path, *args):
    """Run a reader with its own warnings and log chatter silenced: the user gets one clear
    line for a bad file, not a reader's internals next to it."""
    quiet = [logging.getLogger(name) for name in ("pypdfium2", "bs4", "docx")]
    levels = [logger.level for logger in quiet]
    try:
        for logger in quiet:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return read(*args)
    except IngestError:
        raise
    except Exception as exc:  # readers raise anything from zlib errors to KeyError
        raise _cannot_read(path, exc) from exc
    finally:
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)


def _pdf(path: Path) -> tuple[str, str | None, tuple[int, ...], list[Heading], str | None]:
    from rag.ingest.pdf import heading_offsets, read_pdf

    pdf = _quietly(read_pdf, path, path)
    texts, starts, published, at = [], [], None, 0
    for number, page in enumerate(pdf.pages):
        text, date = clean_text(page)
        if number == 0:
            published = date
        starts.append(at)
        texts.append(text)
        at += len(text) + len(PAGE_SEPARATOR)
    headings = heading_offsets(texts, starts, pdf.headings)
    return PAGE_SEPARATOR.join(texts), published, tuple(starts), headings, pdf.title


def _html(path: Path, data: bytes) -> tuple[str, str | None, list[Heading], str | None]:
    from rag.ingest.html import read_html

    page = _quietly(read_html, path, data)
    return page.text, None, page.headings, page.title


def _docx(path: Path) -> tuple[str, list[Heading], str | None]:
    import docx

    def read() -> tuple[str, list[Heading], str | None]:
        document = docx.Document(str(path))
        blocks, headings, at = [], [], 0
        for paragraph in document.paragraphs:
            text = " ".join(paragraph.text.split())
            if not text:
                continue
            style = (paragraph.style.name if paragraph.style is not None else "") or ""
            if style.startswith("Heading") and style[7:].strip().isdigit():
                headings.append(Heading(at, int(style[7:]), text))
            elif style == "Title":
                headings.append(Heading(at, 1, text))
            blocks.append(text)
            at += len(text) + 2
        for table in document.tables:
            for row in table.rows:
                line = " | ".join(" ".join(cell.text.split()) for cell in row.cells)
                blocks.append(line)
        # The "Title" paragraph, if any: core properties often hold a template's placeholder.
        title = next((h.title for h in headings if h.level == 1), None)
        return "\n\n".join(blocks), headings, title

    return _quietly(read, path)


def load_file(path: Path, doc_id: str | None = None) -> LoadedDocument:
    """Read and clean one file; raises IngestError with a clear message for a bad file."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise IngestError(
            f"{path.name}: unsupported file type '{suffix or '(none)'}'; "
            f"supported: {', '.join(SUPPORTED_SUFFIXES)}"
        )
    if not path.is_file():
        raise IngestError(f"{path}: no such file")
    data = path.read_bytes()
    if not data.strip():
        raise IngestError(f"{path.name}: the file is empty")
    title: str | None = None
    pages: tuple[int, ...] = ()
    if suffix == ".pdf":
        text, published, pages, headings, title = _pdf(path)
    elif suffix in HTML_SUFFIXES:
        text, published, headings, title = _html(path, data)
    elif suffix == ".docx":
        raw, headings, title = _docx(path)
        text, published = clean_text(raw)
        headings = headings if text == raw else []  # offsets hold only for untouched text
    else:
        text, published = clean_text(_read_text_file(path, data))
        headings = markdown_headings(text) if suffix in MARKDOWN_SUFFIXES else []
        headings = headings or numbered_headings(text)
    if not text.strip():
        raise IngestError(f"{path.name}: no text could be extracted")
    return LoadedDocument(
        doc_id=doc_id or path.as_posix(),
        text=text,
        title=str(title or derive_title(text)),
        published=published,
        path=str(path),
        title_from_text=not title,
        size=len(data),
        pages=pages,
        headings=tuple(headings),
    )

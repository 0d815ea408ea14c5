"""Reading one file into a cleaned document, through llama-index's readers."""

from __future__ import annotations

from pathlib import Path

from rag.ingest.clean import clean_text, derive_title
from rag.ingest.document import IngestError, LoadedDocument
from rag.ingest.formats import SUPPORTED_SUFFIXES, TEXT_SUFFIXES


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


def _read_with_reader(path: Path) -> tuple[str, dict]:
    from llama_index.readers.file import DocxReader, HTMLTagReader, PDFReader

    suffix = path.suffix.lower()
    if suffix == ".pdf":
        reader = PDFReader(return_full_document=True)
    elif suffix == ".docx":
        reader = DocxReader()
    else:
        reader = HTMLTagReader(tag="body", ignore_no_id=False)
    try:
        documents = reader.load_data(path)
    except Exception as exc:  # readers raise anything from zlib errors to KeyError
        cause = exc
        if hasattr(exc, "last_attempt"):  # PDFReader retries (tenacity): report the real error
            cause = exc.last_attempt.exception() or exc
        raise IngestError(f"{path.name}: cannot be read as {suffix[1:].upper()} ({cause})") from exc
    text = "\n\n".join(d.text for d in documents if d.text.strip())
    metadata = documents[0].metadata if documents else {}
    if suffix in (".html", ".htm"):
        from bs4 import BeautifulSoup

        title = BeautifulSoup(path.read_bytes(), "html.parser").title
        if title and title.string:
            metadata = {**metadata, "title": title.string.strip()}
    return text, metadata


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
    metadata: dict = {}
    if suffix in TEXT_SUFFIXES:
        raw = _read_text_file(path, data)
    else:
        raw, metadata = _read_with_reader(path)
    text, published = clean_text(raw)
    if not text:
        raise IngestError(f"{path.name}: no text could be extracted")
    title = metadata.get("title")
    return LoadedDocument(
        doc_id=doc_id or path.as_posix(),
        text=text,
        title=str(title or derive_title(text)),
        published=published,
        path=str(path),
        title_from_text=not title,
        size=len(data),
    )

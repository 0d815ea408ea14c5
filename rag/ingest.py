"""Documents in: load a file through llama-index readers, clean it, chunk it token-aware.

Cleaning turns the seed format's `date YYYY-MM-DD` header into `published` metadata and keeps
navigation boilerplate (lines that only advertise another article, "Also read: ...") out of
chunks, so it can never be retrieved or cited. Chunk offsets index the cleaned text.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from llama_index.core import Document
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx")
TEXT_SUFFIXES = (".txt", ".md", ".markdown")
MAX_TITLE_CHARS = 90
# Bumped whenever what a chunk stores changes; an index built with another needs `rag reindex`.
CHUNK_SCHEMA = 3

_DATE_HEADER = re.compile(r"\A\s*date\s+(\d{4}-\d{2}-\d{2})\b[ \t]*")
_PROMO_LINE = re.compile(
    r"^\s*(also read|read also|read more|see also|also see|related|recommended|must read|"
    r"don'?t miss|you may also like|watch|listen)\s*[:|–—-]",
    re.IGNORECASE,
)
# Metadata that is bookkeeping, not content: kept out of what the embedder and BM25 see.
_HIDDEN_METADATA = ["doc_id", "path", "content_hash", "chunk_index", "published_day"]


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

    @property
    def content_hash(self) -> str:
        key = "\x1f".join([self.text, self.title, self.published or "", self.source or ""])
        return hashlib.sha256(key.encode()).hexdigest()


def clean_text(raw: str) -> tuple[str, str | None]:
    """Normalise whitespace, lift a leading `date YYYY-MM-DD` header, drop promo lines."""
    text = raw.replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ")
    published = None
    if match := _DATE_HEADER.match(text):
        published = match.group(1)
        text = text[match.end() :]
    lines = [line.rstrip() for line in text.split("\n") if not _PROMO_LINE.match(line)]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines))
    text = re.sub(r"[ \t]{2,}", " ", text)
    return text.strip(), published


def derive_title(text: str) -> str:
    first = next((line.strip() for line in text.split("\n") if line.strip()), "")
    first = first.lstrip("#").strip()  # a Markdown heading
    first = re.split(r"(?<=[.!?])\s", first, maxsplit=1)[0]
    if len(first) <= MAX_TITLE_CHARS:
        return first
    return first[:MAX_TITLE_CHARS].rsplit(" ", 1)[0] + "…"


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
    )


def make_splitter(chunk_size: int, chunk_overlap: int) -> SentenceSplitter:
    """Token-aware splitter (tiktoken, llama-index's default tokenizer)."""
    return SentenceSplitter(chunk_size=chunk_size, chunk_overlap=chunk_overlap)


def chunk_id(doc_id: str, content_hash: str, index: int) -> str:
    """Deterministic: the same document content always yields the same ids."""
    return f"{hashlib.sha1(doc_id.encode()).hexdigest()[:12]}-{content_hash[:12]}-{index:04d}"


def chunk_document(document: LoadedDocument, splitter: SentenceSplitter) -> list[TextNode]:
    metadata = {
        "doc_id": document.doc_id,
        "title": document.title,
        "content_hash": document.content_hash,
        "path": document.path or "",
    }
    if document.published:
        metadata["published"] = document.published
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", document.published):  # Chroma ranges need numbers
            metadata["published_day"] = int(document.published.replace("-", ""))
    if document.source:
        metadata["source"] = document.source
    hidden = _HIDDEN_METADATA + (["title"] if document.title_from_text else [])
    # Split on the text alone so chunk_size counts text tokens. The embedder sees the text alone
    # too: with a title/source/date header it embeds 43% fewer chunks/s (benchmarks/embedder.py),
    # and questions name those where keyword search (sections, retrieve.py) and filters look.
    everything = [*metadata, "chunk_index"]
    source = Document(
        text=document.text,
        metadata=metadata,
        excluded_embed_metadata_keys=everything,
        excluded_llm_metadata_keys=everything,
    )
    nodes = splitter.get_nodes_from_documents([source])
    for index, node in enumerate(nodes):
        node.id_ = chunk_id(document.doc_id, document.content_hash, index)
        node.metadata["chunk_index"] = index
        node.excluded_embed_metadata_keys = [*everything]
        node.excluded_llm_metadata_keys = list(hidden)
        # Only the link to the document: llama-index writes its id as the flat `doc_id` Chroma
        # metadata that deletes filter on (with no link it writes the string 'None' there).
        node.relationships = {NodeRelationship.SOURCE: RelatedNodeInfo(node_id=document.doc_id)}
    return nodes


def iter_files(paths: list[Path]) -> list[Path]:
    """Expand folders (recursively, supported types only, hidden files skipped)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(
                sorted(
                    p
                    for p in path.rglob("*")
                    if p.is_file()
                    and p.suffix.lower() in SUPPORTED_SUFFIXES
                    and not any(part.startswith(".") for part in p.relative_to(path).parts)
                )
            )
        else:
            files.append(path)
    return files

"""Documents in: read a file (llama-index readers), clean it, chunk it token-aware."""

from rag.ingest.chunking import (
    CHUNK_SCHEMA,
    LARGE_TEXT_CHARS,
    chunk_document,
    chunk_id,
    chunk_pieces,
    make_splitter,
)
from rag.ingest.clean import MAX_TITLE_CHARS, clean_text, derive_title
from rag.ingest.document import IngestError, LoadedDocument
from rag.ingest.formats import SUPPORTED_SUFFIXES, is_supported, iter_files
from rag.ingest.readers import load_file

__all__ = [
    "CHUNK_SCHEMA",
    "LARGE_TEXT_CHARS",
    "MAX_TITLE_CHARS",
    "SUPPORTED_SUFFIXES",
    "IngestError",
    "LoadedDocument",
    "chunk_document",
    "chunk_id",
    "chunk_pieces",
    "clean_text",
    "derive_title",
    "is_supported",
    "iter_files",
    "load_file",
    "make_splitter",
]

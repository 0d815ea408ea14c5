"""Token-aware chunking (llama-index's SentenceSplitter, tiktoken counts) with stable ids."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator

from llama_index.core import Document
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode

from rag.ingest.document import LoadedDocument

# Bumped whenever what a chunk stores changes; an index built with another needs `rag reindex`.
CHUNK_SCHEMA = 3
# Metadata that is bookkeeping, not content: kept out of what the embedder and BM25 see (the
# chunk index's BM25 reads the section path before the text: rag.retrieval.keyword).
_HIDDEN_METADATA = [
    "doc_id", "path", "content_hash", "chunk_index", "published_day", "page", "section",
]  # fmt: skip


def make_splitter(chunk_size: int, chunk_overlap: int) -> SentenceSplitter:
    """Token-aware splitter (tiktoken, llama-index's default tokenizer)."""
    return SentenceSplitter(chunk_size=chunk_size, chunk_overlap=chunk_overlap)


def chunk_id(doc_id: str, content_hash: str, index: int) -> str:
    """Deterministic: the same document content always yields the same ids."""
    return f"{hashlib.sha1(doc_id.encode()).hexdigest()[:12]}-{content_hash[:12]}-{index:04d}"


# Texts longer than this are chunked piece by piece, so that no tokenizer step (the sentence
# splitter's regular expressions have a time limit) ever sees a whole huge file and memory stays
# bounded; shorter ones, nearly every real document, are chunked whole.
LARGE_TEXT_CHARS = 200_000
PIECE_CHARS = 100_000


def text_pieces(text: str, size: int = PIECE_CHARS) -> list[tuple[int, int]]:
    """(start, end) pieces of at most `size` characters, cut at a paragraph break, else a line
    break, else a space, where there is one in the piece's second half."""
    pieces, start = [], 0
    while len(text) - start > size:
        window = text[start : start + size]
        cut = next(
            (at for sep in ("\n\n", "\n", " ") if (at := window.rfind(sep)) > size // 2),
            size,
        )
        pieces.append((start, start + cut))
        start += cut
    pieces.append((start, len(text)))
    return pieces


def chunk_document(document: LoadedDocument, splitter: SentenceSplitter) -> list[TextNode]:
    """All chunks of a document (use `chunk_pieces` for a large one)."""
    return [node for piece in chunk_pieces(document, splitter) for node in piece]


def chunk_pieces(document: LoadedDocument, splitter: SentenceSplitter) -> Iterator[list[TextNode]]:
    """The document's chunks, a piece of its text at a time (one piece unless it is large);
    ids and offsets run on across pieces as if it had been chunked whole."""
    content_hash = document.content_hash  # hashes the whole text: once, not per chunk
    if len(document.text) <= LARGE_TEXT_CHARS:
        yield _chunk(document, content_hash, splitter, document.text, 0, 0)
        return
    index = 0
    for start, end in text_pieces(document.text):
        nodes = _chunk(document, content_hash, splitter, document.text[start:end], start, index)
        index += len(nodes)
        yield nodes


def _chunk(
    document: LoadedDocument,
    content_hash: str,
    splitter: SentenceSplitter,
    text: str,
    offset: int,
    first: int,
) -> list[TextNode]:
    metadata = {
        "doc_id": document.doc_id,
        "title": document.title,
        "content_hash": content_hash,
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
    # too (a metadata header costs embedding time), and questions name title, source and date
    # where keyword search over sections and the filters look for them.
    everything = [*metadata, "chunk_index", "page", "section"]
    source = Document(
        text=text,
        metadata=metadata,
        excluded_embed_metadata_keys=everything,
        excluded_llm_metadata_keys=everything,
    )
    nodes = splitter.get_nodes_from_documents([source])
    for index, node in enumerate(nodes, start=first):
        node.id_ = chunk_id(document.doc_id, content_hash, index)
        node.metadata["chunk_index"] = index
        if offset:
            node.start_char_idx = (node.start_char_idx or 0) + offset
            node.end_char_idx = (node.end_char_idx or 0) + offset
        start = node.start_char_idx or 0
        if (page := document.page_at(start)) is not None:
            node.metadata["page"] = page
        if section := document.section_at(start):
            node.metadata["section"] = section
        node.excluded_embed_metadata_keys = [*everything]
        node.excluded_llm_metadata_keys = list(hidden)
        # Only the link to the document: llama-index writes its id as the flat `doc_id` Chroma
        # metadata that deletes filter on (with no link it writes the string 'None' there).
        node.relationships = {NodeRelationship.SOURCE: RelatedNodeInfo(node_id=document.doc_id)}
    return nodes

"""The knowledge base: chunks in Chroma (embedded PersistentClient, or a Chroma server), plus a
manifest collection with one record per document (its cleaned text and metadata).

Writes are ordered so an ingest killed at any point leaves a state that the next ingest repairs
exactly: a document's manifest record is written last, so a document without one is redone, and
redoing first removes whatever a killed run left of it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.schema import NodeWithScore, TextNode
from llama_index.vector_stores.chroma import ChromaVectorStore

from rag.config import Settings
from rag.ingest import (
    CHUNK_SCHEMA,
    LARGE_TEXT_CHARS,
    IngestError,
    LoadedDocument,
    iter_files,
    load_file,
    make_splitter,
)
from rag.ingest.chunking import chunk_pieces
from rag.ingest.structure import structure_from_json, structure_json
from rag.knowledge_base.chroma import (
    clean_metadata,
    make_chroma_client,
    node_from_record,
    where_filter,
)
from rag.knowledge_base.lock import NoLock, WriterLock
from rag.knowledge_base.records import (
    DocumentInfo,
    FileError,
    IndexMismatchError,
    IngestReport,
    Progress,
)

log = logging.getLogger(__name__)

RECENT_DOCUMENTS = 32  # stored documents kept after a read (passages are widened from them)
EMBED_GROUP_CHUNKS = 256  # chunks embedded in one call (about a few news articles)


class KnowledgeBase:
    """Documents → chunks → Chroma. One instance per process; it is safe to share."""

    def __init__(
        self,
        settings: Settings,
        embedder: BaseEmbedding,
        client: Any = None,
        check_config: bool = True,
        wait_for_writer: bool = True,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        """`wait_for_writer=False`: a write while another process writes fails at once
        (WriterBusyError) instead of waiting; `on_wait` is told when a write waits."""
        self.settings = settings
        self._check = check_config
        self.embedder = embedder
        self.client = client or make_chroma_client(settings)
        self.writer = (
            NoLock()
            if settings.chroma_url
            else WriterLock(settings.data_dir, wait=wait_for_writer, notify=on_wait)
        )
        self.splitter = make_splitter(settings.chunk_size, settings.chunk_overlap)
        self._fingerprint: str | None = None
        self._recent_documents: dict[tuple[str, str | None], LoadedDocument] = {}
        self._open_collections()

    # -- collections -------------------------------------------------------------------
    @property
    def index_config(self) -> dict[str, Any]:
        return {
            "embed_model": self.embedder.model_name,
            "chunk_size": self.settings.chunk_size,
            "chunk_overlap": self.settings.chunk_overlap,
            "chunk_schema": CHUNK_SCHEMA,
        }

    def _open_collections(self) -> None:
        """Open the collections; creating them (or replacing an empty one built with other
        settings) is a write, so it takes the writer lock, and opening existing ones does not."""
        name = self.settings.collection
        existing = {c if isinstance(c, str) else c.name for c in self.client.list_collections()}
        if {name, f"{name}__documents"} <= existing:
            self._get_collections()
        else:
            with self.writer.held():
                self._get_collections()
        if self._check:
            self._check_config()
        self.vector_store = ChromaVectorStore(chroma_collection=self.chunks)

    def _get_collections(self) -> None:
        name = self.settings.collection
        self.chunks = self.client.get_or_create_collection(
            name, metadata={**self.index_config, "hnsw:space": "cosine"}, embedding_function=None
        )
        self.manifest = self.client.get_or_create_collection(
            f"{name}__documents", embedding_function=None
        )

    def _check_config(self) -> None:
        stored = self.chunks.metadata or {}
        differences = {
            key: (stored.get(key), value)
            for key, value in self.index_config.items()
            if stored.get(key) != value
        }
        if not differences:
            return
        if self.chunks.count() == 0 and self.manifest.count() == 0:
            with self.writer.held():
                self.client.delete_collection(self.chunks.name)
                self.chunks = self.client.get_or_create_collection(
                    self.settings.collection,
                    metadata={**self.index_config, "hnsw:space": "cosine"},
                    embedding_function=None,
                )
            return
        described = ", ".join(
            f"{k}: index has {old!r}, settings say {new!r}" for k, (old, new) in differences.items()
        )
        raise IndexMismatchError(
            f"The index '{self.settings.collection}' was built with other settings ({described}). "
            "Run `rag reindex` to rebuild it with the current settings."
        )

    # -- reading -----------------------------------------------------------------------
    def documents(self) -> list[DocumentInfo]:
        records = self.manifest.get(include=["metadatas"])
        infos = [
            DocumentInfo(
                doc_id=doc_id,
                title=str(meta.get("title", doc_id)),
                chunks=int(meta.get("chunks", 0)),
                content_hash=str(meta.get("content_hash", "")),
                published=meta.get("published"),
                source=meta.get("source"),
                path=meta.get("path"),
                size=meta.get("size"),
                added=meta.get("added"),
            )
            for doc_id, meta in zip(records["ids"], records["metadatas"], strict=True)
        ]
        return sorted(infos, key=lambda d: d.doc_id)

    def document(self, doc_id: str, content_hash: str | None = None) -> LoadedDocument | None:
        """A stored document as it was read: cleaned text, pages and headings. With the
        `content_hash` its chunks carry, a recent read of that same version is reused, so
        answering does not fetch a long document's text for every question."""
        key = (doc_id, content_hash)
        if content_hash and key in self._recent_documents:
            return self._recent_documents[key]
        records = self.manifest.get(ids=[doc_id], include=["documents", "metadatas"])
        if not records["ids"]:
            return None
        document = _stored_document(doc_id, records["documents"][0], records["metadatas"][0])
        if content_hash and document.content_hash == content_hash:
            self._recent_documents[key] = document
            while len(self._recent_documents) > RECENT_DOCUMENTS:
                self._recent_documents.pop(next(iter(self._recent_documents)))
        return document

    def document_text(self, doc_id: str) -> str | None:
        records = self.manifest.get(ids=[doc_id], include=["documents"])
        return records["documents"][0] if records["ids"] else None

    def stats(self) -> dict[str, int]:
        return {"documents": self.manifest.count(), "chunks": self.chunks.count()}

    def fingerprint(self) -> str:
        """Changes whenever the set of indexed chunks changes (keys the persisted BM25 index).
        Kept between calls for an embedded store, which this process's writes invalidate; read
        afresh from a Chroma server, which other processes (a second `rag serve`, a `rag
        ingest`) may write at any time."""
        if self._fingerprint is None or self.settings.chroma_url:
            state = sorted((d.doc_id, d.content_hash) for d in self.documents())
            key = json.dumps([self.index_config, state])
            self._fingerprint = hashlib.sha256(key.encode()).hexdigest()[:16]
        return self._fingerprint

    def document_texts(self) -> dict[str, str]:
        """Every document's cleaned text by id (chunk offsets index it)."""
        records = self.manifest.get(include=["documents"])
        return dict(zip(records["ids"], records["documents"], strict=True))

    def all_nodes(self) -> list[TextNode]:
        """Every chunk, for building the keyword index."""
        nodes: list[TextNode] = []
        batch = 5000
        for offset in range(0, self.chunks.count(), batch):
            records = self.chunks.get(
                include=["metadatas", "documents"], limit=batch, offset=offset
            )
            for chunk_id, text, meta in zip(
                records["ids"], records["documents"], records["metadatas"], strict=True
            ):
                nodes.append(node_from_record(chunk_id, text, meta))
        return nodes

    def dense_search(
        self,
        vectors: Sequence[Sequence[float]],
        k: int,
        sources: tuple[str, ...] = (),
        days: tuple[int, int] | None = None,
    ) -> list[list[NodeWithScore]]:
        """The k chunks nearest each query vector, restricted to these publishers and days;
        each hit's score is its cosine similarity. One Chroma query for all vectors: Chroma
        spends most of a filtered query on the filter, so batching them costs little more."""
        result = self.chunks.query(
            query_embeddings=[list(v) for v in vectors],
            n_results=k,
            where=where_filter(sources, days),
            include=["documents", "metadatas", "distances"],
        )
        return [
            [
                # cosine space: distance = 1 - cosine
                NodeWithScore(node=node_from_record(i, text, meta), score=1.0 - distance)
                for i, text, meta, distance in zip(ids, texts, metas, distances, strict=True)
            ]
            for ids, texts, metas, distances in zip(
                result["ids"],
                result["documents"],
                result["metadatas"],
                result["distances"],
                strict=True,
            )
        ]

    def chunk_embeddings(self) -> tuple[dict[str, int], np.ndarray]:
        """Every chunk's stored embedding: (row by chunk id, matrix)."""
        stored = self.chunks.get(include=["embeddings"])
        rows = {chunk_id: row for row, chunk_id in enumerate(stored["ids"])}
        return rows, np.asarray(stored["embeddings"], dtype=np.float32)

    # -- writing -----------------------------------------------------------------------
    def ingest(
        self, paths: Iterable[Path], sync: bool = False, progress: Progress | None = None
    ) -> IngestReport:
        """Load, chunk and store files; with `sync`, drop documents whose files are gone.

        A file that cannot be read or chunked is reported in `errors` and every other file is
        still stored."""
        paths = [Path(p) for p in paths]
        report = IngestReport()
        loaded: list[LoadedDocument] = []
        for path in iter_files(paths):
            try:
                loaded.append(load_file(path, doc_id=doc_id_for(path)))
            except IngestError as exc:
                report.errors.append(FileError(str(path), str(exc)))
            except Exception as exc:  # a reader's bug must not cost the other files
                log.warning("reading %s failed: %r", path, exc)
                report.errors.append(FileError(str(path), f"{path.name}: cannot be read ({exc})"))
        with self.writer.held():
            self.add_documents(loaded, report=report, progress=progress)
            if sync:
                seen = {doc_id_for(p) for p in iter_files(paths)}
                # Resolved paths: a root of "." has the id ".", a prefix of no relative id.
                roots = [p.resolve() for p in paths]
                for info in self.documents():
                    resolved = Path(info.doc_id).resolve()
                    under_root = any(resolved.is_relative_to(root) for root in roots)
                    if under_root and info.doc_id not in seen and self.delete(info.doc_id):
                        report.removed.append(info.doc_id)
        return report

    def add_documents(
        self,
        documents: list[LoadedDocument],
        report: IngestReport | None = None,
        progress: Progress | None = None,
    ) -> IngestReport:
        """Chunk, embed and store new or changed documents; unchanged ones are skipped.

        Chunks of several documents are embedded in one call: length-sorted batches pad less.
        A large document is chunked, embedded and written a piece at a time, its manifest
        record last. Writing stays in this thread: on 2 cores Chroma's index threads would
        compete with the embedder's."""
        report = report or IngestReport()
        with self.writer.held():
            known = {d.doc_id: d.content_hash for d in self.documents()}
            writer = _BatchWriter(self, report, len(documents), progress)
            if progress:
                progress(0, len(documents), "")
            for document in documents:
                previous = known.get(document.doc_id)
                if previous == document.content_hash:
                    report.unchanged.append(document.doc_id)
                    writer.advance(1, document.doc_id)
                    continue
                if writer.add(document):
                    (report.updated if previous else report.added).append(document.doc_id)
            writer.flush()
        return report

    def _embed(self, nodes: list[TextNode]) -> None:
        texts = [node.get_content(metadata_mode="embed") for node in nodes]
        vectors = self.embedder.get_text_embedding_batch(texts) if texts else []
        for node, vector in zip(nodes, vectors, strict=True):
            node.embedding = vector

    def _write_chunks(self, doc_ids: list[str], nodes: list[TextNode], fresh: bool) -> None:
        """Embedded chunks into Chroma; `fresh` first removes what a killed run (or the
        previous version) left of these documents."""
        if fresh:
            self.chunks.delete(where={"doc_id": {"$in": doc_ids}})
        if nodes:
            self.vector_store.add(nodes)

    def _write_manifest(self, documents: list[tuple[LoadedDocument, int]]) -> None:
        """Each document's manifest record, written after all its chunks: a document counts
        as stored only when they all are."""
        added = datetime.now(UTC).isoformat(timespec="seconds")
        self.manifest.upsert(
            ids=[document.doc_id for document, _ in documents],
            embeddings=[[1.0]] * len(documents),
            documents=[document.text for document, _ in documents],
            metadatas=[
                clean_metadata(
                    {
                        "title": document.title,
                        "content_hash": document.content_hash,
                        "chunks": chunks,
                        "published": document.published,
                        "source": document.source,
                        "path": document.path,
                        "title_from_text": document.title_from_text,
                        "size": document.size,
                        "added": added,
                        "structure": structure_json(document),
                    }
                )
                for document, chunks in documents
            ],
        )
        self._fingerprint = None

    def delete(self, doc_id: str) -> bool:
        with self.writer.held():
            if not self.manifest.get(ids=[doc_id])["ids"]:
                return False
            self._fingerprint = None
            self.chunks.delete(where={"doc_id": doc_id})
            self.manifest.delete(ids=[doc_id])
            return True

    def reindex(self, progress: Progress | None = None) -> IngestReport:
        """Rebuild chunks and embeddings from the stored document texts with current settings.

        The texts are saved to a file first, so a reindex that dies midway loses nothing: the
        next reindex starts from that file."""
        with self.writer.held():
            return self._reindex(progress)

    def _reindex(self, progress: Progress | None) -> IngestReport:
        backup = self.settings.data_dir / f"reindex-{self.settings.collection}.jsonl"
        if not backup.is_file():
            records = self.manifest.get(include=["documents", "metadatas"])
            rows = [
                {"doc_id": doc_id, "text": text, "meta": meta}
                for doc_id, text, meta in zip(
                    records["ids"], records["documents"], records["metadatas"], strict=True
                )
            ]
            backup.parent.mkdir(parents=True, exist_ok=True)
            partial = backup.with_suffix(".partial")
            partial.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
            partial.replace(backup)
        rows = [json.loads(line) for line in backup.read_text(encoding="utf-8").splitlines()]
        documents = [_stored_document(row["doc_id"], row["text"], row["meta"]) for row in rows]
        for name in (self.chunks.name, self.manifest.name):
            self.client.delete_collection(name)
        self._fingerprint = None
        self._open_collections()
        report = self.add_documents(documents, progress=progress)
        backup.unlink()
        return report


def _stored_document(doc_id: str, text: str, meta: dict[str, Any]) -> LoadedDocument:
    """A document rebuilt from its manifest record."""
    return LoadedDocument(
        doc_id=doc_id,
        text=text,
        title=str(meta.get("title", doc_id)),
        published=meta.get("published"),
        source=meta.get("source"),
        path=meta.get("path"),
        title_from_text=bool(meta.get("title_from_text")),
        size=meta.get("size"),
        **structure_from_json(meta.get("structure")),
    )


class _BatchWriter:
    """Collects chunks of several documents into embedding calls of about EMBED_GROUP_CHUNKS,
    and writes each document's manifest record once all its chunks are stored."""

    def __init__(
        self, kb: KnowledgeBase, report: IngestReport, total: int, progress: Progress | None
    ) -> None:
        self.kb, self.report, self.total, self.progress = kb, report, total, progress
        self.pending: list[tuple[LoadedDocument, list[TextNode]]] = []
        self.stored = 0  # documents written or found unchanged: what progress reports

    def advance(self, count: int, doc_id: str) -> None:
        self.stored += count
        if self.progress:
            self.progress(self.stored, self.total, doc_id)

    def add(self, document: LoadedDocument) -> bool:
        """Chunk (and, once enough are pending, store) one document; False if it failed."""
        try:
            pieces = chunk_pieces(document, self.kb.splitter)
            first = next(pieces)
            if len(document.text) <= LARGE_TEXT_CHARS:
                self.pending.append((document, first))
                self.report.chunks += len(first)
                if sum(len(group) for _, group in self.pending) >= EMBED_GROUP_CHUNKS:
                    self.flush()
                return True
            self.flush()  # a large document streams on its own
            self._stream(document, itertools.chain([first], pieces))
            return True
        except Exception as exc:  # one document's failure must not cost the others
            log.warning("ingesting %s failed: %r", document.doc_id, exc)
            name = Path(document.path or document.doc_id).name
            self.report.errors.append(
                FileError(document.path or document.doc_id, f"{name}: cannot be indexed ({exc})")
            )
            self.advance(1, document.doc_id)
            return False

    def _stream(self, document: LoadedDocument, pieces: Iterable[list[TextNode]]) -> None:
        fresh, count, group = True, 0, []
        for nodes in pieces:
            group += nodes
            while len(group) >= EMBED_GROUP_CHUNKS:
                batch, group = group[:EMBED_GROUP_CHUNKS], group[EMBED_GROUP_CHUNKS:]
                self.kb._embed(batch)
                self.kb._write_chunks([document.doc_id], batch, fresh)
                fresh, count = False, count + len(batch)
        self.kb._embed(group)
        self.kb._write_chunks([document.doc_id], group, fresh)
        count += len(group)
        self.kb._write_manifest([(document, count)])
        self.report.chunks += count
        self.advance(1, document.doc_id)

    def flush(self) -> None:
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        nodes = [node for _, group in batch for node in group]
        self.kb._embed(nodes)
        self.kb._write_chunks([document.doc_id for document, _ in batch], nodes, fresh=True)
        self.kb._write_manifest([(document, len(group)) for document, group in batch])
        self.advance(len(batch), batch[-1][0].doc_id)


def doc_id_for(path: Path) -> str:
    """Documents are named by their path, relative to the working directory when inside it."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return resolved.as_posix()

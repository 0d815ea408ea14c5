"""The knowledge base: chunks in Chroma (embedded PersistentClient, or a Chroma server), plus a
manifest collection with one record per document (its cleaned text and metadata).

Writes are ordered so an ingest killed at any point leaves a state that the next ingest repairs
exactly: a document's manifest record is written last, so a document without one is redone, and
redoing first removes whatever a killed run left of it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
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
    IngestError,
    LoadedDocument,
    chunk_document,
    iter_files,
    load_file,
    make_splitter,
)
from rag.knowledge_base.chroma import (
    clean_metadata,
    make_chroma_client,
    node_from_record,
    where_filter,
)
from rag.knowledge_base.records import (
    DocumentInfo,
    FileError,
    IndexMismatchError,
    IngestReport,
    Progress,
)

log = logging.getLogger(__name__)

EMBED_GROUP_CHUNKS = 256  # chunks embedded in one call (about a few news articles)


class KnowledgeBase:
    """Documents → chunks → Chroma. One instance per process; it is safe to share."""

    def __init__(
        self,
        settings: Settings,
        embedder: BaseEmbedding,
        client: Any = None,
        check_config: bool = True,
    ) -> None:
        self.settings = settings
        self._check = check_config
        self.embedder = embedder
        self.client = client or make_chroma_client(settings)
        self.splitter = make_splitter(settings.chunk_size, settings.chunk_overlap)
        self._fingerprint: str | None = None
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
        name = self.settings.collection
        self.chunks = self.client.get_or_create_collection(
            name, metadata={**self.index_config, "hnsw:space": "cosine"}, embedding_function=None
        )
        self.manifest = self.client.get_or_create_collection(
            f"{name}__documents", embedding_function=None
        )
        if self._check:
            self._check_config()
        self.vector_store = ChromaVectorStore(chroma_collection=self.chunks)

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

    def document_text(self, doc_id: str) -> str | None:
        records = self.manifest.get(ids=[doc_id], include=["documents"])
        return records["documents"][0] if records["ids"] else None

    def stats(self) -> dict[str, int]:
        return {"documents": self.manifest.count(), "chunks": self.chunks.count()}

    def fingerprint(self) -> str:
        """Changes whenever the set of indexed chunks changes (keys the persisted BM25 index)."""
        if self._fingerprint is None:
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
        """Load, chunk and store files; with `sync`, drop documents whose files are gone."""
        paths = [Path(p) for p in paths]
        report = IngestReport()
        loaded: list[LoadedDocument] = []
        for path in iter_files(paths):
            try:
                loaded.append(load_file(path, doc_id=doc_id_for(path)))
            except IngestError as exc:
                report.errors.append(FileError(str(path), str(exc)))
        self.add_documents(loaded, report=report, progress=progress)
        if sync:
            seen = {doc_id_for(p) for p in iter_files(paths)}
            # Compare resolved paths: a root of "." has the id ".", a prefix of no relative id.
            roots = [p.resolve() for p in paths]
            for info in self.documents():
                under_root = any(Path(info.doc_id).resolve().is_relative_to(root) for root in roots)
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
        Writing stays in this thread: on 2 cores Chroma's index threads would compete with the
        embedder's."""
        report = report or IngestReport()
        known = {d.doc_id: d.content_hash for d in self.documents()}
        pending: list[tuple[LoadedDocument, list[TextNode]]] = []
        stored = 0  # documents written or found unchanged: what progress reports

        def advance(count: int, doc_id: str) -> None:
            nonlocal stored
            stored += count
            if progress:
                progress(stored, len(documents), doc_id)

        def flush() -> None:
            nodes = [node for _, group in pending for node in group]
            texts = [node.get_content(metadata_mode="embed") for node in nodes]
            vectors = self.embedder.get_text_embedding_batch(texts) if texts else []
            for node, vector in zip(nodes, vectors, strict=True):
                node.embedding = vector
            self._write_documents(pending)
            advance(len(pending), pending[-1][0].doc_id)
            pending.clear()

        if progress:
            progress(0, len(documents), "")
        for document in documents:
            previous = known.get(document.doc_id)
            if previous == document.content_hash:
                report.unchanged.append(document.doc_id)
                advance(1, document.doc_id)
                continue
            nodes = chunk_document(document, self.splitter)
            pending.append((document, nodes))
            report.chunks += len(nodes)
            (report.updated if previous else report.added).append(document.doc_id)
            if sum(len(group) for _, group in pending) >= EMBED_GROUP_CHUNKS:
                flush()
        if pending:
            flush()
        return report

    def _write_documents(self, batch: list[tuple[LoadedDocument, list[TextNode]]]) -> None:
        """Store embedded chunks, then each document's manifest record (written last, so a
        document counts as stored only when all its chunks are)."""
        doc_ids = [document.doc_id for document, _ in batch]
        added = datetime.now(UTC).isoformat(timespec="seconds")
        # Remove leftovers of a killed run of these very versions, then write them whole.
        self.chunks.delete(where={"doc_id": {"$in": doc_ids}})
        nodes = [node for _, group in batch for node in group]
        if nodes:
            self.vector_store.add(nodes)
        self.manifest.upsert(
            ids=doc_ids,
            embeddings=[[1.0]] * len(batch),
            documents=[document.text for document, _ in batch],
            metadatas=[
                clean_metadata(
                    {
                        "title": document.title,
                        "content_hash": document.content_hash,
                        "chunks": len(group),
                        "published": document.published,
                        "source": document.source,
                        "path": document.path,
                        "title_from_text": document.title_from_text,
                        "size": document.size,
                        "added": added,
                    }
                )
                for document, group in batch
            ],
        )
        self._fingerprint = None

    def delete(self, doc_id: str) -> bool:
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
        documents = [
            LoadedDocument(
                doc_id=row["doc_id"],
                text=row["text"],
                title=str(row["meta"].get("title", row["doc_id"])),
                published=row["meta"].get("published"),
                source=row["meta"].get("source"),
                path=row["meta"].get("path"),
                title_from_text=bool(row["meta"].get("title_from_text")),
                size=row["meta"].get("size"),
            )
            for row in rows
        ]
        for name in (self.chunks.name, self.manifest.name):
            self.client.delete_collection(name)
        self._fingerprint = None
        self._open_collections()
        report = self.add_documents(documents, progress=progress)
        backup.unlink()
        return report


def doc_id_for(path: Path) -> str:
    """Documents are named by their path, relative to the working directory when inside it."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return resolved.as_posix()

"""Retrieval: dense (Chroma) and keyword (BM25) candidates, fused by weighted reciprocal rank.

The BM25 index is persisted under the data dir, keyed by the knowledge base's fingerprint, so it
is rebuilt only when the corpus changes — never per query.
"""

from __future__ import annotations

import logging
import math
import shutil
import threading
from dataclasses import dataclass

from llama_index.core import VectorStoreIndex
from llama_index.core.schema import NodeWithScore, QueryBundle

from rag.config import Settings
from rag.store import KnowledgeBase

log = logging.getLogger(__name__)

RRF_K = 60  # the constant of Cormack et al.; llama-index's QueryFusionRetriever uses it too


@dataclass
class Candidate:
    node: NodeWithScore
    score: float  # fused
    dense_similarity: float | None  # cosine similarity, when the dense retriever found it
    keyword_score: float | None


def cosine_from_chroma(score: float) -> float:
    """ChromaVectorStore reports exp(-distance); with cosine space distance = 1 - cosine."""
    return 1.0 + math.log(max(score, 1e-12))


class Retriever:
    def __init__(self, settings: Settings, kb: KnowledgeBase) -> None:
        self.settings = settings
        self.kb = kb
        self._keyword = None
        self._keyword_fingerprint: str | None = None
        self._lock = threading.Lock()
        index = VectorStoreIndex.from_vector_store(kb.vector_store, embed_model=kb.embedder)
        self._dense = index.as_retriever(similarity_top_k=settings.retrieve_k)

    def keyword_retriever(self):
        """The persisted BM25 index for the current corpus; (re)built only when it changed."""
        from llama_index.retrievers.bm25 import BM25Retriever

        fingerprint = self.kb.fingerprint()
        with self._lock:
            if self._keyword_fingerprint == fingerprint:
                return self._keyword
            folder = self.settings.data_dir / "bm25" / f"{self.settings.collection}-{fingerprint}"
            retriever = None
            if folder.is_dir():
                try:
                    retriever = BM25Retriever.from_persist_dir(str(folder))
                except Exception:  # a damaged or older index: rebuild it
                    log.warning("rebuilding unreadable keyword index %s", folder)
            if retriever is None:
                nodes = self.kb.all_nodes()
                if nodes:
                    retriever = BM25Retriever.from_defaults(
                        nodes=nodes,
                        similarity_top_k=min(self.settings.retrieve_k, len(nodes)),
                        language="english",
                    )
                    parent = folder.parent
                    if parent.is_dir():
                        for old in parent.glob(f"{self.settings.collection}-*"):
                            shutil.rmtree(old, ignore_errors=True)
                    retriever.persist(str(folder))
            if retriever is not None:
                retriever.similarity_top_k = min(self.settings.retrieve_k, len(retriever.corpus))
            self._keyword, self._keyword_fingerprint = retriever, fingerprint
            return retriever

    def retrieve(self, query: str) -> list[Candidate]:
        """Fused candidates, best first."""
        if self.kb.chunks.count() == 0:
            return []
        bundle = QueryBundle(query_str=query)
        dense = self._dense.retrieve(bundle)
        keyword_retriever = self.keyword_retriever()
        keyword = keyword_retriever.retrieve(bundle) if keyword_retriever else []
        return fuse(dense, keyword, self.settings.dense_weight, self.settings.keyword_weight)


def fuse(
    dense: list[NodeWithScore],
    keyword: list[NodeWithScore],
    dense_weight: float = 1.0,
    keyword_weight: float = 1.0,
) -> list[Candidate]:
    """Weighted reciprocal rank fusion of two ranked lists."""
    by_id: dict[str, Candidate] = {}
    for rank, hit in enumerate(dense):
        candidate = by_id.setdefault(hit.node.node_id, Candidate(hit, 0.0, None, None))
        candidate.score += dense_weight / (RRF_K + rank + 1)
        candidate.dense_similarity = cosine_from_chroma(hit.score or 0.0)
    for rank, hit in enumerate(keyword):
        candidate = by_id.setdefault(hit.node.node_id, Candidate(hit, 0.0, None, None))
        candidate.score += keyword_weight / (RRF_K + rank + 1)
        candidate.keyword_score = hit.score
    return sorted(by_id.values(), key=lambda c: c.score, reverse=True)

"""Retrieval: dense (Chroma) and keyword (BM25) candidates, fused by weighted reciprocal rank.

Questions that name publishers ("according to TechCrunch ... as reported by The Verge") are
planned into sub-queries, one restricted to each named source, whose results are interleaved so
every needed document has a place in the context. The BM25 index is persisted under the data
dir, keyed by the knowledge base's fingerprint: rebuilt only when the corpus changes.
"""

from __future__ import annotations

import logging
import math
import re
import shutil
import threading
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from llama_index.core import VectorStoreIndex
from llama_index.core.schema import NodeWithScore, QueryBundle
from llama_index.core.vector_stores import FilterOperator, MetadataFilter, MetadataFilters

from rag.config import Settings
from rag.store import KnowledgeBase

log = logging.getLogger(__name__)
logging.getLogger("bm25s").setLevel(logging.WARNING)

RRF_K = 60  # the constant of Cormack et al.; llama-index's QueryFusionRetriever uses it too
MAX_CHUNKS_PER_DOC = 2  # in the first pass of merging, so one article cannot fill the list


@dataclass
class Candidate:
    node: NodeWithScore
    score: float  # fused
    dense_similarity: float | None  # cosine similarity, when the dense retriever found it
    keyword_score: float | None

    @property
    def chunk_id(self) -> str:
        return self.node.node.node_id

    @property
    def doc_id(self) -> str:
        return str(self.node.node.metadata.get("doc_id", ""))


@dataclass(frozen=True)
class SubQuery:
    text: str
    sources: tuple[str, ...] = ()  # restrict to documents from these publishers


@dataclass
class Retrieval:
    candidates: list[Candidate]
    plan: list[SubQuery] = field(default_factory=list)

    @property
    def parts(self) -> int:
        """How many separately sourced parts the question has (1 for a plain question)."""
        return max(1, len([q for q in self.plan if q.sources]))


def cosine_from_chroma(score: float) -> float:
    """ChromaVectorStore reports exp(-distance); with cosine space distance = 1 - cosine."""
    return 1.0 + math.log(max(score, 1e-12))


def source_aliases(sources: list[str]) -> dict[str, tuple[str, ...]]:
    """How questions name publishers: 'The Independent - Sports' is also 'The Independent',
    'Cnbc | World Business News Leader' also 'Cnbc' / 'CNBC'."""
    aliases: dict[str, set[str]] = defaultdict(set)
    for source in sources:
        short = re.split(r"\s+[|:–-]\s+", source)[0].strip()
        for alias in {source, short, short.upper()} if len(short) >= 3 else {source}:
            aliases[alias].add(source)
    return {alias: tuple(sorted(found)) for alias, found in aliases.items()}


def plan_queries(question: str, aliases: dict[str, tuple[str, ...]]) -> list[SubQuery]:
    """The question itself, plus one sub-query per distinct publisher it names."""
    plan = [SubQuery(question)]
    taken: list[tuple[int, int]] = []
    for alias in sorted(aliases, key=len, reverse=True):
        for match in re.finditer(rf"(?<!\w){re.escape(alias)}(?!\w)", question):
            if any(match.start() < end and start < match.end() for start, end in taken):
                continue
            taken.append(match.span())
            sub = SubQuery(question, aliases[alias])
            if sub not in plan:
                plan.append(sub)
    return plan


class Retriever:
    def __init__(self, settings: Settings, kb: KnowledgeBase) -> None:
        self.settings = settings
        self.kb = kb
        self._keyword = None
        self._keyword_fingerprint: str | None = None
        self._aliases: dict[str, tuple[str, ...]] = {}
        self._source_masks: dict[tuple[str, ...], np.ndarray] = {}
        self._lock = threading.Lock()
        self._index = VectorStoreIndex.from_vector_store(kb.vector_store, embed_model=kb.embedder)

    def keyword_retriever(self):
        """The persisted BM25 index for the current corpus; (re)built only when it changed."""
        fingerprint = self.kb.fingerprint()
        with self._lock:
            if self._keyword_fingerprint != fingerprint:
                self._keyword = self._load_or_build_keyword_index(fingerprint)
                self._keyword_fingerprint = fingerprint
                self._source_masks = {}
                sources = {d.source for d in self.kb.documents() if d.source}
                self._aliases = source_aliases(sorted(sources))
            return self._keyword

    def _load_or_build_keyword_index(self, fingerprint: str):
        from llama_index.retrievers.bm25 import BM25Retriever

        folder = self.settings.data_dir / "bm25" / f"{self.settings.collection}-{fingerprint}"
        if folder.is_dir():
            try:
                return BM25Retriever.from_persist_dir(str(folder), show_progress=False)
            except Exception:  # a damaged or older index: rebuild it
                log.warning("rebuilding unreadable keyword index %s", folder)
        nodes = self.kb.all_nodes()
        if not nodes:
            return None
        retriever = BM25Retriever.from_defaults(nodes=nodes, language="english")
        for old in folder.parent.glob(f"{self.settings.collection}-*"):
            shutil.rmtree(old, ignore_errors=True)
        retriever.persist(str(folder))
        return retriever

    def _source_mask(self, sources: tuple[str, ...]) -> np.ndarray:
        mask = self._source_masks.get(sources)
        if mask is None:
            corpus = self._keyword.corpus
            wanted = set(sources)
            mask = np.array(
                [float(entry.get("source") in wanted) for entry in corpus],
                dtype=np.float32,
            )
            self._source_masks[sources] = mask
        return mask

    def _keyword_search(self, sub: SubQuery, k: int) -> list[NodeWithScore]:
        import bm25s
        from llama_index.core.vector_stores.utils import metadata_dict_to_node

        keyword = self._keyword
        if keyword is None:
            return []
        tokens = bm25s.tokenize(
            sub.text,
            stemmer=keyword.stemmer,
            token_pattern=keyword.token_pattern,
            show_progress=False,
        )
        mask = self._source_mask(sub.sources) if sub.sources else None
        k = min(k, len(keyword.corpus))
        indexes, scores = keyword.bm25.retrieve(
            tokens, k=k, show_progress=False, weight_mask=mask, n_threads=1
        )
        return [
            NodeWithScore(
                node=metadata_dict_to_node(
                    hit if isinstance(hit, dict) else keyword.corpus[int(hit)]
                ),
                score=float(score),
            )
            for hit, score in zip(indexes[0], scores[0], strict=True)
            if score > 0
        ]

    def _dense_search(self, sub: SubQuery, k: int, embedding: list[float]) -> list[NodeWithScore]:
        filters = None
        if sub.sources:
            filters = MetadataFilters(
                filters=[
                    MetadataFilter(
                        key="source", value=list(sub.sources), operator=FilterOperator.IN
                    )
                ]
            )
        retriever = self._index.as_retriever(similarity_top_k=k, filters=filters)
        return retriever.retrieve(QueryBundle(query_str=sub.text, embedding=embedding))

    def retrieve(self, query: str) -> Retrieval:
        """Fused candidates for the question, best first, with the plan that produced them."""
        if self.kb.chunks.count() == 0:
            return Retrieval([], [SubQuery(query)])
        self.keyword_retriever()
        plan = plan_queries(query, self._aliases)
        k = self.settings.retrieve_k
        embeddings: dict[str, list[float]] = {}
        ranked_lists = []
        for sub in plan:
            if sub.text not in embeddings:
                embeddings[sub.text] = self.kb.embedder.get_query_embedding(sub.text)
            ranked_lists.append(
                fuse(
                    self._dense_search(sub, k, embeddings[sub.text]),
                    self._keyword_search(sub, k),
                    self.settings.dense_weight,
                    self.settings.keyword_weight,
                )
            )
        if len(ranked_lists) == 1:
            return Retrieval(ranked_lists[0], plan)
        # Sourced sub-queries first: their documents are the ones the question asks about.
        return Retrieval(interleave(ranked_lists[1:] + ranked_lists[:1]), plan)


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


def interleave(ranked_lists: list[list[Candidate]]) -> list[Candidate]:
    """Round-robin over the lists, skipping repeats; a document gets at most
    MAX_CHUNKS_PER_DOC places until every list is exhausted, then the rest follow."""
    merged: list[Candidate] = []
    seen: set[str] = set()
    per_doc: dict[str, int] = defaultdict(int)
    deferred: list[Candidate] = []
    for rank in range(max(len(r) for r in ranked_lists)):
        for ranked in ranked_lists:
            if rank >= len(ranked) or ranked[rank].chunk_id in seen:
                continue
            candidate = ranked[rank]
            seen.add(candidate.chunk_id)
            if per_doc[candidate.doc_id] >= MAX_CHUNKS_PER_DOC:
                deferred.append(candidate)
                continue
            per_doc[candidate.doc_id] += 1
            merged.append(candidate)
    return merged + deferred

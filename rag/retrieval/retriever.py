"""The retriever: plan → first ranking (dense + keyword, fused) → reranked pool.

It holds what is built once per corpus version (the keyword indexes, the publisher aliases,
the chunks' stored vectors) and rebuilds it when the knowledge base's fingerprint changes.
"""

from __future__ import annotations

import threading

import numpy as np

from rag.config import Settings
from rag.knowledge_base import KnowledgeBase
from rag.retrieval.candidates import Retrieval
from rag.retrieval.first_stage import FirstStage, first_stage
from rag.retrieval.keyword import KeywordIndexes, index_folder, load_or_build
from rag.retrieval.plan import SubQuery, source_aliases
from rag.retrieval.pool import Pool, build_pool, ordered
from rag.retrieval.reranker import LambdaMARTReranker, Reranker
from rag.retrieval.reranker.short_questions import (
    SHIPPED_SHORT_MODEL,
    ShortQuestionReranker,
    ShortReranker,
    learned_order,
    short_features,
)


class Retriever:
    def __init__(
        self, settings: Settings, kb: KnowledgeBase, reranker: Reranker | None = None
    ) -> None:
        self.settings = settings
        self.kb = kb
        self._reranker = reranker  # None: the configured model, loaded when first needed
        self._short_reranker: ShortReranker | None = None
        self._short_loaded = False
        self._lock = threading.Lock()
        self._fingerprint: str | None = None
        self._indexes: KeywordIndexes | None = None
        self._aliases: dict[str, tuple[str, ...]] = {}
        self._vectors: tuple[dict[str, int], np.ndarray] | None = None

    def keyword_indexes(self) -> KeywordIndexes | None:
        """The keyword indexes of the current corpus (None when nothing is indexed); loaded
        from disk, or built, only when the corpus changed."""
        fingerprint = self.kb.fingerprint()
        with self._lock:
            if self._fingerprint != fingerprint:
                folder = index_folder(self.settings.data_dir, self.settings.collection, fingerprint)
                self._indexes = load_or_build(self.kb, folder, self.settings.section_chunks)
                self._vectors = None
                sources = {d.source for d in self.kb.documents() if d.source}
                self._aliases = source_aliases(sorted(sources))
                self._fingerprint = fingerprint
            return self._indexes

    def use_reranker(self, reranker: Reranker) -> None:
        """Order long questions' pools with this model from now on."""
        self._reranker = reranker

    def reranker(self) -> Reranker:
        """The reranker (the shipped model unless settings name a file)."""
        if self._reranker is None:
            self._reranker = LambdaMARTReranker.load(self.settings.ranker_model)
        return self._reranker

    def use_short_reranker(self, reranker: ShortReranker) -> None:
        """Order short questions' chunks with this model from now on."""
        self._short_reranker, self._short_loaded = reranker, True

    def short_reranker(self) -> ShortReranker | None:
        """The short questions' model (the shipped one unless settings name a file); None when
        it is turned off or none ships, and the fused order stands."""
        if not self._short_loaded:
            path = self.settings.short_ranker_model or SHIPPED_SHORT_MODEL
            if self.settings.rerank_short_questions and (
                path.is_file() or self.settings.short_ranker_model
            ):
                self._short_reranker = ShortQuestionReranker.load(path)
            self._short_loaded = True
        return self._short_reranker

    @staticmethod
    def short_ranked(first: FirstStage) -> bool:
        """A short question searched as itself: one whose plan names sources keeps their
        interleaved places (each named source's best chunk in the prompt)."""
        return not first.long and len(first.plan) == 1 and len(first.candidates) > 1

    def short_question_features(self, question: str, first: FirstStage) -> np.ndarray:
        """`SHORT_FEATURES` of a short question's fused candidates, in their order."""
        indexes = self.keyword_indexes()
        assert indexes is not None, "a first stage implies indexes"
        rows, matrix = self.stored_vectors()
        query = first.vectors.get(first.plan[0].text)
        cosines = np.array(
            [
                float(matrix[rows[c.chunk_id]] @ query)
                if query is not None and c.chunk_id in rows
                else (c.dense_similarity or 0.0)
                for c in first.candidates
            ]
        )
        bm25 = first.keyword_scores.normalised(indexes.chunks, first.plan[0])
        keyword = np.array(
            [
                float(bm25[indexes.chunks.rows[c.chunk_id]])
                if c.chunk_id in indexes.chunks.rows
                else 0.0
                for c in first.candidates
            ]
        )
        return short_features(question, first.candidates, cosines, keyword)

    def stored_vectors(self) -> tuple[dict[str, int], np.ndarray]:
        """Every chunk's stored embedding, read once per corpus version, so a pool's few
        hundred are looked up instead of asked of Chroma on every question."""
        with self._lock:
            if self._vectors is None:
                self._vectors = self.kb.chunk_embeddings()
            return self._vectors

    def first_stage(self, question: str) -> FirstStage | None:
        """The plan and its fused ranking; None when nothing is indexed (cheaper to know than
        to count Chroma's chunks)."""
        indexes = self.keyword_indexes()
        if indexes is None:
            return None
        return first_stage(question, self.kb, indexes, self._aliases, self.settings)

    def pool(self, first: FirstStage) -> Pool:
        """The candidates the reranker orders after this first ranking."""
        indexes = self.keyword_indexes()
        assert indexes is not None, "a first stage implies indexes"
        return build_pool(first, indexes, self.stored_vectors(), self.settings)

    def retrieve(self, question: str) -> Retrieval:
        """Ranked candidates for the question, best first, with the plan that produced them."""
        indexes = self.keyword_indexes()
        if indexes is None:
            return Retrieval([], [SubQuery(question)], empty_corpus=True)
        first = first_stage(question, self.kb, indexes, self._aliases, self.settings)
        candidates = first.candidates
        if first.learned and candidates:
            pool = build_pool(first, indexes, self.stored_vectors(), self.settings)
            if len(pool):
                scores = self.reranker().score(question, pool)
                candidates = ordered(first, pool, scores, indexes, self.settings)
        elif self.short_ranked(first) and (short := self.short_reranker()) is not None:
            scores = short.predict(self.short_question_features(question, first))
            candidates = [candidates[i] for i in learned_order(scores)]
        return Retrieval(candidates, first.plan, first.long)

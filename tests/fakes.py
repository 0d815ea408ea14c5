"""Scripted fakes for the seams: an LLM with queued responses, a bag-of-words embedder, a
reranker that follows one feature, and a verifier with a fixed say. (The page's fakes hand it
the knowledge base's real records: rag.knowledge_base.IngestReport, DocumentInfo, FileError.)"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from llama_index.core.base.embeddings.base import BaseEmbedding

from rag.answer.verifier import Claim, Support, Verifier
from rag.llm import LLM, LLMError, Message
from rag.retrieval.reranker import Reranker

if TYPE_CHECKING:
    import numpy as np

    from rag.knowledge_base import KnowledgeBase
    from rag.retrieval.pool import Pool


class FakeLLM(LLM):
    """Replies with queued responses, streamed a few characters at a time; records every call.

    Like any `LLM` without a prompt cache of its own, priming it does nothing (and asks it
    nothing)."""

    description = "fake LLM"

    def __init__(self, *responses: str | Exception) -> None:
        self.responses = list(responses)
        self.calls: list[list[Message]] = []

    def stream(self, messages: Sequence[Message], max_tokens: int) -> Iterator[str]:
        self.calls.append(list(messages))
        if not self.responses:
            raise AssertionError("FakeLLM: no response queued for this call")
        response = self.responses.pop(0)
        if isinstance(response, Exception):
            raise response
        for start in range(0, len(response), 3):
            yield response[start : start + 3]


class PrimingLLM(FakeLLM):
    """A model server that keeps prompt prefixes itself (as LocalLLM does): records them."""

    def __init__(self, *responses: str | Exception) -> None:
        super().__init__(*responses)
        self.primed: list[list[Message]] = []

    def prime(self, messages: Sequence[Message]) -> None:
        self.primed.append(list(messages))


class FailingLLM(FakeLLM):
    def __init__(self, message: str = "Cannot reach the LLM at http://127.0.0.1:9: is it running?"):
        super().__init__(*([LLMError(message)] * 10))


class ByFeature(Reranker):
    """A reranker that scores a pool's candidates by one of the LambdaMART features alone."""

    def __init__(self, feature: str, sign: float = 1.0) -> None:
        from rag.retrieval.reranker import FEATURES

        self.column, self.sign = FEATURES.index(feature), sign

    def score(self, question: str, pool: Pool) -> np.ndarray:
        from rag.retrieval.reranker import features

        return self.sign * features(pool.signals)[:, self.column]


class ShortByFeature:
    """A short questions' reranker that scores candidates by one of its features alone."""

    def __init__(self, feature: str, sign: float = 1.0) -> None:
        from rag.retrieval.reranker.short_questions import SHORT_FEATURES

        self.column, self.sign = SHORT_FEATURES.index(feature), sign

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        return self.sign * matrix[:, self.column]


class FixedVerifier(Verifier):
    """A verifier that gives every claim the same probability and remembers what it read."""

    def __init__(self, probability: float, threshold: float = 0.5) -> None:
        self.probability, self.threshold = probability, threshold
        self.claims: list[Claim] = []

    def support(self, claim: Claim) -> Support:
        self.claims.append(claim)
        return Support(self.probability, {"lexical_support": 1.0})


class FakeEmbedding(BaseEmbedding):
    """Deterministic bag-of-words vectors: similar wording, similar vectors. No model needed."""

    dimensions: int = 256

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("model_name", "fake-bow")
        super().__init__(**kwargs)

    def _vector(self, text: str) -> list[float]:
        vector = [0.0] * self.dimensions
        for word in re.findall(r"\w+", text.lower()):
            if len(word) > 2:
                bucket = int(hashlib.md5(word[:6].encode()).hexdigest(), 16) % self.dimensions
                vector[bucket] += 1.0
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        return [v / norm for v in vector]

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._vector(text)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)


def add_news(kb: KnowledgeBase, records: Sequence[tuple[str, str, str, str]]) -> None:
    """Ingest (doc_id, source, published, text) news records as the eval's corpus does."""
    from rag_eval.data import corpus_document

    kb.add_documents(
        [
            corpus_document({"doc_id": d, "source": s, "published_at": p, "text": t})
            for d, s, p, t in records
        ]
    )

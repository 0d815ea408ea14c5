"""Scripted fakes for the seams: an LLM with queued responses, a bag-of-words embedder, a ranking
model that follows one feature, and the records a knowledge base hands the page (documents,
ingest reports, file errors)."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding

from rag.llm import LLMError, Message


class FakeLLM:
    """Replies with queued responses, streamed a few characters at a time; records every call."""

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


class ByFeature:
    """A ranking model (rag.rank.Ranker) that scores candidates by one feature alone."""

    def __init__(self, feature: str, sign: float = 1.0) -> None:
        from rag.rank import FEATURES

        self.column, self.sign = FEATURES.index(feature), sign

    def score(self, matrix: Any) -> Any:
        return self.sign * matrix[:, self.column]


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


@dataclass
class FakeDoc:
    doc_id: str
    title: str
    published: str | None
    chunks: int
    path: Path | None = None


@dataclass
class FakeReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    chunks: int = 0
    errors: list[Any] = field(default_factory=list)


@dataclass
class FakeFileError:
    path: Path
    message: str

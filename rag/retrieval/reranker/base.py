"""The reranker seam: orders a long question's candidate pool.

A reranker gets the question and the pool (`rag.retrieval.pool.Pool`: each candidate section's
text through `pool.section(j)`, and the signals retrieval already computed) and returns one
score per candidate, higher is better. The shipped one is boosted trees over the signals; a
text-pair model (a cross-encoder) would read the question and the sections' texts instead.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from rag.retrieval.pool import Pool


class Reranker(ABC):
    @abstractmethod
    def score(self, question: str, pool: Pool) -> np.ndarray:
        """One score per pool candidate (len(pool)), higher is better."""

"""Rerankers: the seam (`Reranker`) and the shipped LambdaMART model."""

from rag.retrieval.reranker.base import Reranker
from rag.retrieval.reranker.lambdamart import (
    FEATURES,
    SHIPPED_MODEL,
    LambdaMARTReranker,
    features,
    fit_lambdamart,
    trained_on,
)

__all__ = [
    "FEATURES",
    "SHIPPED_MODEL",
    "LambdaMARTReranker",
    "Reranker",
    "features",
    "fit_lambdamart",
    "trained_on",
]

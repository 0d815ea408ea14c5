"""Retrieval: planning, keyword and dense search, fusion, and the reranked pool."""

from rag.retrieval.candidates import Candidate, Retrieval
from rag.retrieval.plan import SubQuery
from rag.retrieval.retriever import Retriever

__all__ = ["Candidate", "Retrieval", "Retriever", "SubQuery"]

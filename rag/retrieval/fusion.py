"""Merging ranked lists: weighted reciprocal-rank fusion, and round-robin interleaving."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

from llama_index.core.schema import NodeWithScore

from rag.retrieval.candidates import Candidate

RRF_K = 60  # the constant of Cormack et al.; llama-index's QueryFusionRetriever uses it too
MAX_CHUNKS_PER_DOC = 2  # in the first pass of merging, so one article cannot fill the list


def rrf(weight: float, rank: int) -> float:
    """A list's weighted reciprocal-rank contribution for the item at 0-based `rank`."""
    return weight / (RRF_K + rank + 1)


def fuse(
    dense: list[NodeWithScore],
    keyword: list[NodeWithScore],
    dense_weight: float = 1.0,
    keyword_weight: float = 1.0,
) -> list[Candidate]:
    """Weighted reciprocal rank fusion of a dense list (scores: cosine) and a keyword list
    (scores: BM25)."""
    by_id: dict[str, Candidate] = {}
    for rank, hit in enumerate(dense):
        candidate = by_id.get(hit.node.node_id) or Candidate(hit, 0.0, None, None)
        by_id[hit.node.node_id] = replace(
            candidate,
            score=candidate.score + rrf(dense_weight, rank),
            dense_similarity=hit.score or 0.0,
        )
    for rank, hit in enumerate(keyword):
        candidate = by_id.get(hit.node.node_id) or Candidate(hit, 0.0, None, None)
        by_id[hit.node.node_id] = replace(
            candidate,
            score=candidate.score + rrf(keyword_weight, rank),
            keyword_score=hit.score,
        )
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
            if rank >= len(ranked) or ranked[rank].key in seen:
                continue
            candidate = ranked[rank]
            seen.add(candidate.key)
            if per_doc[candidate.doc_id] >= MAX_CHUNKS_PER_DOC:
                deferred.append(candidate)
                continue
            per_doc[candidate.doc_id] += 1
            merged.append(candidate)
    return merged + deferred

"""The candidates a long question's reranker orders, and what is known of each.

The pool is the first ranking's best sections plus every other section of its best articles
(the evidence is often another section of an article the first ranking found). Each section
comes with its text, its chunks, and signals relative to the rest of the pool: how well it (and
its best chunk) matches each claim of the question by keywords and by embedding, whether its
publisher and date are the ones the question names, where it sits in its article.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from llama_index.core.schema import NodeWithScore, TextNode

from rag.config import Settings
from rag.retrieval.candidates import Candidate
from rag.retrieval.first_stage import FirstStage
from rag.retrieval.keyword import KeywordIndex, KeywordIndexes


@dataclass
class PoolSignals:
    """What is known of a pool of candidate sections, for one question's plan.

    Matrices are (plan parts × sections). Keyword scores are BM25 divided by the best score for
    that part over the whole corpus (so 1.0 = the corpus's best match), cosines are the best of
    the section's chunks."""

    is_claim: Sequence[bool]  # per plan part: a claim (not the whole question)
    is_sourced_question: Sequence[bool]  # per plan part: the whole question, one publisher
    section_keywords: np.ndarray
    chunk_keywords: np.ndarray  # the section's best chunk
    cosine: np.ndarray
    doc_ids: Sequence[str]
    from_named_source: np.ndarray
    in_named_date_window: np.ndarray
    position: np.ndarray  # section index in its article
    sections_in_article: np.ndarray
    first_stage: np.ndarray  # bool: in the first-stage list (not only added with its article)


@dataclass
class Pool:
    """Candidate sections (`sections[j]`, with their signals) and their chunks: one run per
    section, chunk_ids[chunk_bounds[j]:chunk_bounds[j + 1]] for section j."""

    question: str
    index: KeywordIndex  # the section index
    rows: list[int]  # section rows in it
    signals: PoolSignals
    chunk_ids: list[str]
    chunk_bounds: list[int]
    chunk_match: np.ndarray  # (plan parts × chunks) keyword + cosine match, to pick the shown one
    chunk_question_cosine: np.ndarray  # each chunk's cosine with the whole question

    def __len__(self) -> int:
        return len(self.rows)

    def section(self, j: int) -> TextNode:
        """Candidate j's section (its text is what a text-pair reranker would read)."""
        return self.index.node(self.rows[j])


def build_pool(
    first: FirstStage,
    indexes: KeywordIndexes,
    stored_vectors: tuple[dict[str, int], np.ndarray],
    settings: Settings,
) -> Pool:
    """The first `rerank_pool` sections of the first ranking, and every other section of the
    articles of its first `rerank_expand_docs`, with their signals."""
    sections, chunks = indexes.sections, indexes.chunks
    first_rows = [sections.rows[c.key] for c in first.candidates[: settings.rerank_pool]]
    wanted = list(first_rows)
    for candidate in first.candidates[: settings.rerank_expand_docs]:
        wanted += indexes.article_sections.get(candidate.doc_id, [])
    vector_rows, vectors = stored_vectors
    # a section's chunks that are indexed (all of them in a consistent index)
    members = {
        row: [c for c in indexes.section_chunks[row] if c in chunks.rows and c in vector_rows]
        for row in dict.fromkeys(wanted)
    }
    rows = [row for row, group in members.items() if group]
    flat = [chunk_id for row in rows for chunk_id in members[row]]
    starts = np.cumsum([0] + [len(members[row]) for row in rows[:-1]])
    plan = first.plan
    question = plan[0].text
    scores = first.keyword_scores

    parts = np.stack([first.vectors[sub.text] for sub in plan])
    chunk_cosine = parts @ vectors[[vector_rows[c] for c in flat]].T
    chunk_keyword_rows = [chunks.rows[c] for c in flat]
    chunk_keywords = np.stack([scores.normalised(chunks, sub)[chunk_keyword_rows] for sub in plan])
    named = {source for sub in plan for source in sub.sources}
    windows = [sub.days for sub in plan if sub.days]
    doc_ids = [indexes.doc_id(row) for row in rows]
    in_first = set(first_rows)
    signals = PoolSignals(
        is_claim=[i > 0 and sub.text != question for i, sub in enumerate(plan)],
        is_sourced_question=[i > 0 and sub.text == question for i, sub in enumerate(plan)],
        section_keywords=np.stack([scores.normalised(sections, sub)[rows] for sub in plan]),
        chunk_keywords=np.maximum.reduceat(chunk_keywords, starts, axis=1),
        cosine=np.maximum.reduceat(chunk_cosine, starts, axis=1),
        doc_ids=doc_ids,
        from_named_source=np.isin(sections.sources[rows], list(named)),
        in_named_date_window=np.array(
            [any(low <= day <= high for low, high in windows) for day in sections.days[rows]],
            dtype=bool,
        ),
        position=np.array([indexes.section_position[row] for row in rows]),
        sections_in_article=np.array([len(indexes.article_sections[d]) for d in doc_ids]),
        first_stage=np.array([row in in_first for row in rows], dtype=bool),
    )
    return Pool(
        question,
        sections,
        rows,
        signals,
        flat,
        [*starts.tolist(), len(flat)],
        chunk_keywords + chunk_cosine,
        chunk_cosine[0],
    )


def ordered(
    first: FirstStage,
    pool: Pool,
    scores: np.ndarray,
    indexes: KeywordIndexes,
    settings: Settings,
) -> list[Candidate]:
    """The pool in the reranker's order, cut to `rerank_pool`, then the rest of the first
    ranking. A section the first ranking did not hold shows its chunk that best matches a part
    of the question; a reranked candidate's dense similarity is its shown chunk's cosine with
    the whole question (what the relevance gate reads)."""
    sections, chunks = indexes.sections, indexes.chunks
    bounds, flat = pool.chunk_bounds, pool.chunk_ids
    in_pool = {sections.rows[c.key]: c for c in first.candidates[: settings.rerank_pool]}
    question_scores = first.keyword_scores.of(sections, first.plan[0])
    ranked: list[Candidate] = []
    for j in np.argsort(-scores, kind="stable")[: settings.rerank_pool].tolist():
        row, span = pool.rows[j], range(bounds[j], bounds[j + 1])
        score = float(scores[j])
        candidate = in_pool.get(row)
        if candidate is None:
            focus = max(span, key=lambda i: pool.chunk_match[:, i].max())
            node = chunks.node(chunks.rows[flat[focus]])
            keyword = float(question_scores[row]) if question_scores is not None else None
            candidate = Candidate(
                NodeWithScore(node=node), 0.0, None, keyword, section=pool.section(j)
            )
        else:
            focus = next((i for i in span if flat[i] == candidate.chunk_id), span[0])
        ranked.append(
            replace(
                candidate,
                node=NodeWithScore(node=candidate.node.node, score=score),
                score=score,
                dense_similarity=float(pool.chunk_question_cosine[focus]),
            )
        )
    kept = {c.key for c in ranked}
    return ranked + [c for c in first.candidates if c.key not in kept]

"""The first ranking: each sub-query's dense and keyword hits fused, the lists interleaved.

Short questions (paraphrases of one fact, a few words that one chunk holds) rank chunks, with
dense and keyword search both weighing in, so two good chunks of one section can both be shown.
Long, entity-rich questions rank sections by BM25 with dense hits breaking near-ties; each
section brings its best-matching chunk, which keeps the prompt short.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from llama_index.core.schema import NodeWithScore

from rag.config import Settings
from rag.knowledge_base import KnowledgeBase
from rag.retrieval.candidates import Candidate
from rag.retrieval.fusion import fuse, interleave, rrf
from rag.retrieval.keyword import KeywordIndex, KeywordIndexes, top_rows
from rag.retrieval.plan import SubQuery, is_long, plan_queries


@dataclass
class KeywordScores:
    """BM25 scores of every entry of an index for a sub-query, computed once per question."""

    _memo: dict[tuple[int, SubQuery], np.ndarray | None] = field(default_factory=dict)

    def of(self, index: KeywordIndex, sub: SubQuery) -> np.ndarray | None:
        key = (id(index), sub)
        if key not in self._memo:
            self._memo[key] = index.scores(sub)
        return self._memo[key]

    def normalised(self, index: KeywordIndex, sub: SubQuery) -> np.ndarray:
        """Divided by the corpus's best score for the sub-query (1.0 = the best match)."""
        scores = self.of(index, sub)
        if scores is None or scores.max() <= 0:
            return np.zeros(len(index.ids), dtype=np.float32)
        return scores / scores.max()


@dataclass
class FirstStage:
    """The plan and its fused, interleaved ranking, before the learned ranking."""

    plan: list[SubQuery]
    long: bool
    learned: bool  # the learned ranking orders it next (a long question, rerank_pool > 1)
    candidates: list[Candidate]
    vectors: dict[str, np.ndarray]  # embedded plan texts (long questions: every part)
    keyword_scores: KeywordScores


def dense_weight(question: str, settings: Settings) -> float:
    """The dense list's weight in the fusion: lower for long questions."""
    if is_long(question, settings.long_question_words):
        return settings.long_question_dense_weight
    return settings.dense_weight


@dataclass
class Search:
    """What ranking one sub-query needs: the indexes, the settings, the question's BM25 memo."""

    indexes: KeywordIndexes
    settings: Settings
    keyword_scores: KeywordScores


def rank_chunks(
    search: Search, sub: SubQuery, dense: list[NodeWithScore], weight: float
) -> list[Candidate]:
    """Chunks ranked by fusing their dense and BM25 ranks."""
    chunks, settings = search.indexes.chunks, search.settings
    keyword = chunks.search(sub, settings.retrieve_k, search.keyword_scores.of(chunks, sub))
    return fuse(dense, keyword, weight, settings.keyword_weight)


def rank_sections(
    search: Search, sub: SubQuery, dense: list[NodeWithScore], weight: float
) -> list[Candidate]:
    """Sections ranked by fusing their BM25 rank with their best chunk's dense rank. Each
    carries the chunk the LLM reads: its chunk that ranks best in the same fusion at chunk
    level (the dense hits and BM25's best chunks), else its best BM25 chunk."""
    indexes, settings, keyword_scores = search.indexes, search.settings, search.keyword_scores
    sections, chunks = indexes.sections, indexes.chunks
    k = settings.retrieve_k
    keyword = sections.search(sub, k, keyword_scores.of(sections, sub))
    by_id = {hit.node.node_id: hit.node for hit in keyword}
    dense_sections: list[NodeWithScore] = []
    for hit in dense:
        section_id = indexes.section_of.get(hit.node.node_id)
        if section_id is None or any(s.node.node_id == section_id for s in dense_sections):
            continue
        if section_id not in by_id:
            by_id[section_id] = sections.node(sections.rows[section_id])
        dense_sections.append(NodeWithScore(node=by_id[section_id], score=hit.score))
    fused = fuse(dense_sections, keyword, weight, settings.keyword_weight)
    # The same fusion at chunk level, as scores only (building nodes for all of BM25's best
    # chunks would cost more than the search): the dense hits and BM25's best chunks.
    chunk_scores = keyword_scores.of(chunks, sub)
    best_chunks = (
        top_rows(chunk_scores, k * settings.section_chunks) if chunk_scores is not None else []
    )
    chunk_fused: dict[str, float] = defaultdict(float)
    for rank, hit in enumerate(dense):
        chunk_fused[hit.node.node_id] += rrf(weight, rank)
    for rank, row in enumerate(best_chunks):
        chunk_fused[chunks.ids[row]] += rrf(settings.keyword_weight, rank)
    dense_nodes = {hit.node.node_id: hit.node for hit in dense}
    candidates = []
    for section in fused:
        members = [
            m
            for m in str(section.node.node.metadata.get("chunk_ids", "")).split()
            if m in chunks.rows
        ]
        if not members:
            continue  # cannot happen with a consistent index; never show a blank passage
        ranked = [m for m in members if m in chunk_fused]
        if ranked:
            focus = max(ranked, key=chunk_fused.__getitem__)
        elif chunk_scores is not None:
            focus = max(members, key=lambda m: chunk_scores[chunks.rows[m]])
        else:
            focus = members[0]
        node = dense_nodes[focus] if focus in dense_nodes else chunks.node(chunks.rows[focus])
        score = section.score + chunk_fused.get(focus, 0.0)
        candidates.append(
            Candidate(
                node=NodeWithScore(node=node, score=score),
                score=score,
                dense_similarity=section.dense_similarity,
                keyword_score=section.keyword_score,
                section=section.node.node,
            )
        )
    return sorted(candidates, key=lambda c: c.score, reverse=True)


def first_stage(
    question: str,
    kb: KnowledgeBase,
    indexes: KeywordIndexes,
    aliases: dict[str, tuple[str, ...]],
    settings: Settings,
) -> FirstStage:
    """The plan and its fused ranking."""
    plan = plan_queries(question, aliases)
    k = settings.retrieve_k
    # A long question leans on keywords: only the whole question gets a dense search, since
    # filtered Chroma queries are most of the retrieval time and their hits would barely
    # move the fusion. With the learned ranking on, it is the dense look instead: it embeds
    # every part of the question and compares them with the candidates' stored vectors.
    long = is_long(question, settings.long_question_words)
    learned = long and settings.rerank_pool > 1
    dense_plan = [] if learned else plan[:1] if long else plan
    texts = list(dict.fromkeys(sub.text for sub in (plan if learned else dense_plan)))
    # alone, the question; its claims, shorter, together (a batch pads to its longest text)
    vectors = [kb.embedder.get_query_embedding(texts[0])]
    if len(texts) > 1:
        vectors += kb.embedder.get_text_embedding_batch(texts[1:])
    embeddings = dict(zip(texts, vectors, strict=True))
    by_filter: dict[tuple, list[SubQuery]] = defaultdict(list)
    for sub in dense_plan:
        by_filter[(sub.sources, sub.days)].append(sub)
    dense: dict[SubQuery, list[NodeWithScore]] = {}
    for (sources, days), subs in by_filter.items():
        hits = kb.dense_search([embeddings[s.text] for s in subs], k, sources, days)
        dense.update(zip(subs, hits, strict=True))
    weight = dense_weight(question, settings)
    rank = rank_sections if long else rank_chunks
    search = Search(indexes, settings, KeywordScores())
    ranked_lists = [rank(search, sub, dense.get(sub, []), weight) for sub in plan]
    # one list, or all of them in the planned order
    candidates = ranked_lists[0] if len(ranked_lists) == 1 else interleave(ranked_lists)
    vectors_by_text = {t: np.asarray(v, dtype=np.float32) for t, v in embeddings.items()}
    return FirstStage(plan, long, learned, candidates, vectors_by_text, search.keyword_scores)

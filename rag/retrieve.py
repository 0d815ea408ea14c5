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
from llama_index.core.schema import NodeWithScore

from rag.config import Settings
from rag.store import KnowledgeBase

log = logging.getLogger(__name__)
logging.getLogger("bm25s").setLevel(logging.WARNING)

MAX_CACHED_MASKS = 256  # filter masks kept between questions (one float per chunk each)
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
    days: tuple[int, int] | None = None  # restrict to documents published in [first, last]


@dataclass
class Retrieval:
    candidates: list[Candidate]
    plan: list[SubQuery] = field(default_factory=list)

    @property
    def parts(self) -> int:
        """How many separately sourced parts the question has (1 for a plain question)."""
        return max(1, len({q.sources for q in self.plan if q.sources}))


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


_MONTH_NAMES = (
    "january february march april may june july august september october november december"
)
_MONTHS = {month: number for number, month in enumerate(_MONTH_NAMES.split(), start=1)}
_DATE = re.compile(
    r"\b(" + "|".join(_MONTHS) + r")\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})\b", re.IGNORECASE
)
_CLAUSE_BREAK = re.compile(
    r",(?!\s*\d{4})\s*(?:and|but|while|whereas)?\s*|\s+(?:while|whereas|and then)\s+|;\s*"
)
MIN_CLAUSE_WORDS = 4


def _content_words(text: str) -> int:
    return len(re.findall(r"[A-Za-z0-9]{3,}", text))


def date_window(text: str) -> tuple[int, int] | None:
    """'published on October 4, 2023' → (20231003, 20231005): a day either side, as publication
    times are stored in UTC and reported in local time."""
    match = _DATE.search(text)
    if not match:
        return None
    from datetime import date, timedelta

    try:
        day = date(int(match.group(3)), _MONTHS[match.group(1).lower()], int(match.group(2)))
    except ValueError:
        return None
    as_int = lambda d: int(d.strftime("%Y%m%d"))  # noqa: E731
    return as_int(day - timedelta(days=1)), as_int(day + timedelta(days=1))


def clauses(text: str) -> list[str]:
    """The parts of a long multi-claim question that can stand as searches of their own."""
    parts = [p.strip(" ,.?;'\"") for p in _CLAUSE_BREAK.split(text)]
    return [p for p in parts if _content_words(p) >= MIN_CLAUSE_WORDS]


def _mention_groups(
    question: str, aliases: dict[str, tuple[str, ...]]
) -> list[tuple[int, int, tuple[str, ...]]]:
    """Publisher mentions as (start, end, sources); adjacent ones ('TechCrunch, Engadget, and
    The Verge') merge into one group."""
    found: list[tuple[int, int, tuple[str, ...]]] = []
    for alias in sorted(aliases, key=len, reverse=True):
        for match in re.finditer(rf"(?<!\w){re.escape(alias)}(?!\w)", question):
            if not any(match.start() < end and start < match.end() for start, end, _ in found):
                found.append((match.start(), match.end(), aliases[alias]))
    found.sort()
    groups: list[tuple[int, int, tuple[str, ...]]] = []
    for start, end, sources in found:
        if groups and _content_words(question[groups[-1][1] : start].replace("and", "")) == 0:
            first, _, previous = groups[-1]
            groups[-1] = (first, end, tuple(sorted(set(previous) | set(sources))))
        else:
            groups.append((start, end, sources))
    return groups


def plan_queries(question: str, aliases: dict[str, tuple[str, ...]]) -> list[SubQuery]:
    """The question; one search per publisher it names; and one per claim next to a publisher
    (restricted to it, and to a date the claim names). A plain question is just itself."""
    groups = _mention_groups(question, aliases)
    plan = [SubQuery(question)]
    if not groups:
        return plan
    claims: list[SubQuery] = []
    edges = [0, *(p for start, end, _ in groups for p in (start, end)), len(question)]
    segments = [question[edges[i] : edges[i + 1]] for i in range(0, len(edges), 2)]
    for index, (_, _, sources) in enumerate(groups):
        plan.append(SubQuery(question, sources))
        for segment in (segments[index], segments[index + 1]):  # claims before and after it
            for clause in clauses(segment):
                claims.append(SubQuery(clause, sources, date_window(clause)))
    return list(dict.fromkeys(plan[:1] + claims + plan[1:]))  # the whole question leads


class Retriever:
    def __init__(self, settings: Settings, kb: KnowledgeBase) -> None:
        self.settings = settings
        self.kb = kb
        self._keyword = None
        self._keyword_fingerprint: str | None = None
        self._aliases: dict[str, tuple[str, ...]] = {}
        self._masks: dict[tuple, np.ndarray] = {}
        self._columns: tuple[np.ndarray, np.ndarray] | None = None
        self._lock = threading.Lock()

    def keyword_retriever(self):
        """The persisted BM25 index for the current corpus; (re)built only when it changed."""
        fingerprint = self.kb.fingerprint()
        with self._lock:
            if self._keyword_fingerprint != fingerprint:
                self._keyword = self._load_or_build_keyword_index(fingerprint)
                self._keyword_fingerprint = fingerprint
                self._masks = {}
                self._columns = None
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

    def _filter_columns(self) -> tuple[np.ndarray, np.ndarray]:
        """Each chunk's source and publication day, so a filter mask is one numpy expression."""
        if self._columns is None:
            corpus = self._keyword.corpus
            self._columns = (
                np.array([entry.get("source") or "" for entry in corpus], dtype=object),
                np.array([int(entry.get("published_day") or 0) for entry in corpus]),
            )
        return self._columns

    def _mask(self, sub: SubQuery) -> np.ndarray | None:
        """BM25 weight mask: 1 for chunks the sub-query's source and date filters admit."""
        if not (sub.sources or sub.days):
            return None
        key = (sub.sources, sub.days)
        mask = self._masks.get(key)
        if mask is None:
            sources, days = self._filter_columns()
            admitted = np.ones(len(days), dtype=bool)
            if sub.sources:
                admitted &= np.isin(sources, list(sub.sources))
            if sub.days:
                admitted &= (days >= sub.days[0]) & (days <= sub.days[1])
            if len(self._masks) >= MAX_CACHED_MASKS:
                self._masks.clear()
            mask = self._masks[key] = admitted.astype(np.float32)
        return mask

    def _keyword_search(self, sub: SubQuery, k: int) -> list[NodeWithScore]:
        """BM25 scores of every chunk (masked by the sub-query's filters) and the top k, with
        numpy directly: bm25s's batch `retrieve` starts a thread pool for each query."""
        import bm25s
        from llama_index.core.vector_stores.utils import metadata_dict_to_node

        keyword = self._keyword
        if keyword is None:
            return []
        tokens = bm25s.tokenize(
            sub.text,
            stemmer=keyword.stemmer,
            token_pattern=keyword.token_pattern,
            return_ids=False,
            show_progress=False,
        )[0]
        if not tokens:
            return []
        scores = keyword.bm25.get_scores(tokens, weight_mask=self._mask(sub))
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [
            NodeWithScore(node=metadata_dict_to_node(keyword.corpus[i]), score=float(scores[i]))
            for i in top.tolist()
            if scores[i] > 0
        ]

    def keyword_only(self, query: str, k: int) -> list[NodeWithScore]:
        """Plain BM25 over all chunks, no plan, no filters: the keyword baseline of `rag eval`."""
        self.keyword_retriever()
        return self._keyword_search(SubQuery(query), k)

    def _dense_search(
        self, subs: list[SubQuery], k: int, embeddings: dict[str, list[float]]
    ) -> list[list[NodeWithScore]]:
        """Dense hits for sub-queries that share one filter, in a single Chroma query: Chroma
        spends most of a filtered query on the filter, so batching them costs little more."""
        from rag.store import node_from_record

        sub = subs[0]
        conditions: list[dict] = []
        if sub.sources:
            conditions.append({"source": {"$in": list(sub.sources)}})
        if sub.days:
            conditions += [
                {"published_day": {"$gte": sub.days[0]}},
                {"published_day": {"$lte": sub.days[1]}},
            ]
        where = (
            conditions[0]
            if len(conditions) == 1
            else ({"$and": conditions} if conditions else None)
        )
        result = self.kb.chunks.query(
            query_embeddings=[embeddings[s.text] for s in subs],
            n_results=k,
            where=where,
            include=["documents", "metadatas", "distances"],
        )
        return [
            [
                NodeWithScore(node=node_from_record(i, text, meta), score=math.exp(-distance))
                for i, text, meta, distance in zip(ids, texts, metas, distances, strict=True)
            ]
            for ids, texts, metas, distances in zip(
                result["ids"],
                result["documents"],
                result["metadatas"],
                result["distances"],
                strict=True,
            )
        ]

    def is_long(self, query: str) -> bool:
        """A long, entity-rich question, which BM25 ranks far better than the dense retriever."""
        return _content_words(query) >= self.settings.long_question_words

    def dense_weight(self, query: str) -> float:
        """The dense list's weight in the fusion: lower for long questions."""
        if self.is_long(query):
            return self.settings.long_question_dense_weight
        return self.settings.dense_weight

    def retrieve(self, query: str) -> Retrieval:
        """Fused candidates for the question, best first, with the plan that produced them."""
        if self.kb.chunks.count() == 0:
            return Retrieval([], [SubQuery(query)])
        self.keyword_retriever()
        plan = plan_queries(query, self._aliases)
        k = self.settings.retrieve_k
        # A long question leans on keywords: only the whole question gets a dense search, since
        # filtered Chroma queries are most of the retrieval time and their hits would barely
        # move the fusion.
        dense_plan = plan[:1] if self.is_long(query) else plan
        texts = list(dict.fromkeys(sub.text for sub in dense_plan))
        vectors = (
            self.kb.embedder.get_text_embedding_batch(texts)
            if len(texts) > 1
            else [self.kb.embedder.get_query_embedding(texts[0])]
        )
        embeddings = dict(zip(texts, vectors, strict=True))
        by_filter: dict[tuple, list[SubQuery]] = defaultdict(list)
        for sub in dense_plan:
            by_filter[(sub.sources, sub.days)].append(sub)
        dense: dict[SubQuery, list[NodeWithScore]] = {}
        for subs in by_filter.values():
            dense.update(zip(subs, self._dense_search(subs, k, embeddings), strict=True))
        ranked_lists = [
            fuse(
                dense.get(sub, []),
                self._keyword_search(sub, k),
                self.dense_weight(query),
                self.settings.keyword_weight,
            )
            for sub in plan
        ]
        if len(ranked_lists) == 1:
            return Retrieval(ranked_lists[0], plan)
        return Retrieval(interleave(ranked_lists), plan)  # in the planned order


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

"""Retrieval: dense (Chroma) and keyword (BM25) candidates, fused by weighted reciprocal rank.

Two grains: chunks (~64 tokens) are what is embedded and what the LLM reads; sections (a few
consecutive chunks of one document, ~256 tokens, with its title, source and date) are what
keyword search and the fusion rank for long, entity-rich questions, which find their evidence
far more often in sections (the MultiHop-RAG paper's chunk size), while a small chunk keeps the
prompt short: each ranked section brings its best-matching chunk to the LLM. The first ranking
(and the other sections of its best articles) is then ranked again by a learned linear model
over each section's signals (`rag.rank`): keyword and embedding matches to each claim of the
question, named publisher and date, place in the article. Short questions rank chunks, by dense
and keyword search fused.

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
from llama_index.core.schema import NodeWithScore, TextNode

from rag.config import Settings
from rag.rank import PoolSignals, Ranker, TreeRanker, features
from rag.store import KnowledgeBase

log = logging.getLogger(__name__)
logging.getLogger("bm25s").setLevel(logging.WARNING)

MAX_CACHED_MASKS = 256  # filter masks kept between questions (one float per chunk each)
MAX_CACHED_NODES = 8192  # parsed nodes kept per keyword index
RRF_K = 60  # the constant of Cormack et al.; llama-index's QueryFusionRetriever uses it too
MAX_CHUNKS_PER_DOC = 2  # in the first pass of merging, so one article cannot fill the list


@dataclass
class Candidate:
    node: NodeWithScore  # the chunk the LLM reads
    score: float  # fused
    dense_similarity: float | None  # cosine similarity, when the dense retriever found it
    keyword_score: float | None
    section: TextNode | None = None  # the ranked unit the chunk was chosen from

    @property
    def chunk_id(self) -> str:
        return self.node.node.node_id

    @property
    def key(self) -> str:
        """What ranking deduplicates on: the section, or the chunk when there is none."""
        return self.section.node_id if self.section is not None else self.chunk_id

    @property
    def unit_text(self) -> str:
        """The ranked unit's text (what retrieval metrics look evidence up in)."""
        unit = self.section if self.section is not None else self.node.node
        return unit.get_content(metadata_mode="none")

    @property
    def doc_id(self) -> str:
        return str(self.node.node.metadata.get("doc_id", ""))


@dataclass(frozen=True)
class SubQuery:
    text: str
    sources: tuple[str, ...] = ()  # restrict to documents from these publishers
    days: tuple[int, int] | None = None  # restrict to documents published in [first, last]


@dataclass
class FirstStage:
    """The plan and its fused, interleaved ranking, before the learned ranking."""

    plan: list[SubQuery]
    long: bool
    learned: bool  # the learned ranking orders it next (a long question, rerank_pool > 1)
    candidates: list[Candidate]
    vectors: dict[str, np.ndarray]  # embedded plan texts (long questions: every part)
    keyword_scores: dict[tuple[int, SubQuery], np.ndarray | None]  # (index id, sub) -> BM25


@dataclass
class Pool:
    """The learned ranking's candidates: section rows, their signals, and their chunks (one
    run per section: chunk_ids[chunk_bounds[j]:chunk_bounds[j + 1]] for section j)."""

    rows: list[int]
    signals: PoolSignals
    chunk_ids: list[str]
    chunk_bounds: list[int]
    chunk_match: np.ndarray  # (plan parts × chunks) keyword + cosine match, to pick the shown one
    chunk_question_cosine: np.ndarray  # each chunk's cosine with the whole question


@dataclass
class Retrieval:
    candidates: list[Candidate]
    plan: list[SubQuery] = field(default_factory=list)
    long: bool = False  # a long, entity-rich question: ranked by sections, given more context

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


def build_sections(
    chunks: list[TextNode], document_texts: dict[str, str], size: int
) -> list[TextNode]:
    """Sections of `size` consecutive chunks of each document: the document's text from the
    first chunk's start to the last one's end, with the chunks' metadata (so BM25 sees title,
    source and date as it would for a chunk) and the ids of the chunks it holds."""
    by_doc: dict[str, list[TextNode]] = defaultdict(list)
    for node in chunks:
        by_doc[str(node.metadata.get("doc_id", ""))].append(node)
    sections: list[TextNode] = []
    for doc_id, nodes in by_doc.items():
        nodes.sort(key=lambda n: int(n.metadata.get("chunk_index", 0)))
        text = document_texts.get(doc_id)
        for start in range(0, len(nodes), size):
            group = nodes[start : start + size]
            first, last = group[0], group[-1]
            if text is not None and first.end_char_idx is not None and last.end_char_idx:
                body = text[first.start_char_idx or 0 : last.end_char_idx]
            else:  # no offsets (records written by other tools): the chunks joined
                body = "\n".join(n.get_content(metadata_mode="none") for n in group)
            metadata = {**first.metadata, "chunk_ids": " ".join(n.node_id for n in group)}
            metadata.pop("chunk_index", None)
            hidden = [*first.excluded_llm_metadata_keys, "chunk_ids"]
            section = TextNode(
                id_=f"{first.node_id}+{len(group)}",
                text=body,
                metadata=metadata,
                excluded_embed_metadata_keys=hidden,
                excluded_llm_metadata_keys=hidden,
            )
            section.relationships = dict(first.relationships)
            sections.append(section)
    return sections


def top_rows(scores: np.ndarray, k: int) -> list[int]:
    """Rows of the k best positive scores, best first."""
    k = min(k, len(scores))
    if k <= 0:
        return []
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top], kind="stable")]
    return [row for row in top.tolist() if scores[row] > 0]


class KeywordIndex:
    """One BM25 index (llama-index's BM25Retriever, bm25s inside) scored with numpy directly:
    bm25s's batch `retrieve` starts a thread pool for each query. Keeps each entry's source and
    publication day as columns, so a filter is one numpy mask."""

    def __init__(self, bm25_retriever) -> None:
        self.retriever = bm25_retriever
        corpus = bm25_retriever.corpus
        self.ids = [str(entry["node_id"]) for entry in corpus]
        self.rows = {node_id: row for row, node_id in enumerate(self.ids)}
        self.sources = np.array([entry.get("source") or "" for entry in corpus], dtype=object)
        self.days = np.array([int(entry.get("published_day") or 0) for entry in corpus])
        self._masks: dict[tuple, np.ndarray] = {}
        self._nodes: dict[int, TextNode] = {}

    def node(self, row: int) -> TextNode:
        """The entry as a node. A long question asks for many, often the same section twice
        (found by several sub-queries) or again for the next question, and parsing one is not
        free, so they are kept (retrieval never changes a node)."""
        from llama_index.core.vector_stores.utils import metadata_dict_to_node

        node = self._nodes.get(row)
        if node is None:
            if len(self._nodes) >= MAX_CACHED_NODES:
                self._nodes.clear()
            node = self._nodes[row] = metadata_dict_to_node(self.retriever.corpus[row])
        return node

    def mask(self, sub: SubQuery) -> np.ndarray | None:
        """Weights: 1 for entries the sub-query's source and date filters admit, else 0."""
        if not (sub.sources or sub.days):
            return None
        key = (sub.sources, sub.days)
        mask = self._masks.get(key)
        if mask is None:
            admitted = np.ones(len(self.days), dtype=bool)
            if sub.sources:
                admitted &= np.isin(self.sources, list(sub.sources))
            if sub.days:
                admitted &= (self.days >= sub.days[0]) & (self.days <= sub.days[1])
            if len(self._masks) >= MAX_CACHED_MASKS:
                self._masks.clear()
            mask = self._masks[key] = admitted.astype(np.float32)
        return mask

    def scores(self, sub: SubQuery) -> np.ndarray | None:
        """BM25 score of every entry for the sub-query (0 where its filters exclude it)."""
        import bm25s

        bm25 = self.retriever
        tokens = bm25s.tokenize(
            sub.text,
            stemmer=bm25.stemmer,
            token_pattern=bm25.token_pattern,
            return_ids=False,
            show_progress=False,
        )[0]
        if not tokens:
            return None
        return bm25.bm25.get_scores(tokens, weight_mask=self.mask(sub))

    def search(
        self, sub: SubQuery, k: int, scores: np.ndarray | None = None
    ) -> list[NodeWithScore]:
        """The k best entries (score > 0), best first; `scores` when already computed."""
        if scores is None:
            scores = self.scores(sub)
        if scores is None:
            return []
        return [
            NodeWithScore(node=self.node(i), score=float(scores[i])) for i in top_rows(scores, k)
        ]


class Retriever:
    def __init__(self, settings: Settings, kb: KnowledgeBase, ranker: Ranker | None = None) -> None:
        self.settings = settings
        self.kb = kb
        self._chunks: KeywordIndex | None = None
        self._sections: KeywordIndex | None = None
        self._section_of: dict[str, str] = {}  # chunk id -> section id
        self._keyword_fingerprint: str | None = None
        self._aliases: dict[str, tuple[str, ...]] = {}
        self._vectors: tuple[dict[str, int], np.ndarray] | None = None  # see stored_vectors
        self._article_sections: dict[str, list[int]] = {}  # doc id -> section rows, in order
        self._section_position: list[int] = []  # section row -> its index in its article
        self._section_chunks: list[list[str]] = []  # section row -> its chunk ids
        self._ranker = ranker  # None: loaded from settings when a long question first needs it
        self._lock = threading.Lock()

    def keyword_retriever(self) -> KeywordIndex | None:
        """The persisted BM25 indexes (chunks and sections) for the current corpus; (re)built
        only when it changed. Returns the section index, which ranking uses."""
        fingerprint = self.kb.fingerprint()
        with self._lock:
            if self._keyword_fingerprint != fingerprint:
                self._load_or_build_keyword_indexes(fingerprint)
                self._keyword_fingerprint = fingerprint
                sources = {d.source for d in self.kb.documents() if d.source}
                self._aliases = source_aliases(sorted(sources))
            return self._sections

    def _load_or_build_keyword_indexes(self, fingerprint: str) -> None:
        from llama_index.retrievers.bm25 import BM25Retriever

        folder = self.settings.data_dir / "bm25" / f"{self.settings.collection}-{fingerprint}"
        section_folder = folder / f"sections-{self.settings.section_chunks}"
        self._chunks = self._sections = None
        self._section_of = {}
        self._article_sections = defaultdict(list)
        self._section_position = []
        self._section_chunks = []
        self._vectors = None
        indexes = None
        if folder.is_dir() and section_folder.is_dir():
            try:
                indexes = [
                    BM25Retriever.from_persist_dir(str(path), show_progress=False)
                    for path in (folder, section_folder)
                ]
            except Exception:  # a damaged or older index: rebuild it
                log.warning("rebuilding unreadable keyword index %s", folder)
        if indexes is None:
            nodes = self.kb.all_nodes()
            if not nodes:
                return
            texts = self.kb.document_texts()
            sections = build_sections(nodes, texts, self.settings.section_chunks)
            indexes = [
                BM25Retriever.from_defaults(nodes=group, language="english")
                for group in (nodes, sections)
            ]
            for old in folder.parent.glob(f"{self.settings.collection}-*"):
                shutil.rmtree(old, ignore_errors=True)
            for index, path in zip(indexes, (folder, section_folder), strict=True):
                index.persist(str(path))
        self._chunks, self._sections = (KeywordIndex(index) for index in indexes)
        for row, entry in enumerate(self._sections.retriever.corpus):
            section_id = str(entry["node_id"])
            article = self._article_sections[str(entry.get("doc_id", ""))]
            self._section_position.append(len(article))
            article.append(row)
            self._section_chunks.append(str(entry.get("chunk_ids", "")).split())
            for chunk_id in self._section_chunks[row]:
                self._section_of[chunk_id] = section_id

    def use_ranker(self, ranker: Ranker) -> None:
        """Rank long questions with this model from now on (`rag eval` ranks held out)."""
        self._ranker = ranker

    def ranker(self) -> Ranker:
        """The learned ranking's model (the shipped one unless settings name a file)."""
        if self._ranker is None:
            self._ranker = TreeRanker.load(self.settings.ranker_model)
        return self._ranker

    def stored_vectors(self) -> tuple[dict[str, int], np.ndarray]:
        """Every chunk's stored embedding (row by chunk id), read from Chroma once per corpus
        version (45 MB at 29k chunks), so the learned ranking looks its few hundred up per
        question instead of asking Chroma for them each time."""
        with self._lock:
            if self._vectors is None:
                stored = self.kb.chunks.get(include=["embeddings"])
                rows = {chunk_id: row for row, chunk_id in enumerate(stored["ids"])}
                self._vectors = rows, np.asarray(stored["embeddings"], dtype=np.float32)
            return self._vectors

    def keyword_only(self, query: str, k: int) -> list[NodeWithScore]:
        """Plain BM25 over the units rag ranks for this question (sections for a long one),
        no plan, no filters: the keyword baseline of `rag eval`."""
        sections = self.keyword_retriever()
        index = sections if self.is_long(query) else self._chunks
        return index.search(SubQuery(query), k) if index else []

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

    def _rank_chunks(
        self,
        sub: SubQuery,
        dense: list[NodeWithScore],
        dense_weight: float,
        keyword_scores: dict[tuple[int, SubQuery], np.ndarray | None],
    ) -> list[Candidate]:
        """Chunks ranked by fusing their dense and BM25 ranks."""
        chunks = self._chunks
        assert chunks is not None
        scores = self._keyword_scores(chunks, sub, keyword_scores)
        keyword = chunks.search(sub, self.settings.retrieve_k, scores)
        return fuse(dense, keyword, dense_weight, self.settings.keyword_weight)

    @staticmethod
    def _keyword_scores(
        index: KeywordIndex,
        sub: SubQuery,
        memo: dict[tuple[int, SubQuery], np.ndarray | None],
    ) -> np.ndarray | None:
        """BM25 scores of one index for a sub-query, computed once per question."""
        key = (id(index), sub)
        if key not in memo:
            memo[key] = index.scores(sub)
        return memo[key]

    def _rank_sections(
        self,
        sub: SubQuery,
        dense: list[NodeWithScore],
        dense_weight: float,
        keyword_scores: dict[tuple[int, SubQuery], np.ndarray | None],
    ) -> list[Candidate]:
        """Sections ranked by fusing their BM25 rank with their best chunk's dense rank. Each
        carries the chunk the LLM reads: its chunk that ranks best in the same fusion at chunk
        level (the dense hits and BM25's best chunks), else its best BM25 chunk."""
        sections, chunks = self._sections, self._chunks
        assert sections is not None and chunks is not None
        k = self.settings.retrieve_k
        keyword = sections.search(sub, k, self._keyword_scores(sections, sub, keyword_scores))
        by_id = {hit.node.node_id: hit.node for hit in keyword}
        dense_sections: list[NodeWithScore] = []
        for hit in dense:
            section_id = self._section_of.get(hit.node.node_id)
            if section_id is None or any(s.node.node_id == section_id for s in dense_sections):
                continue
            if section_id not in by_id:
                by_id[section_id] = sections.node(sections.rows[section_id])
            dense_sections.append(NodeWithScore(node=by_id[section_id], score=hit.score))
        fused = fuse(dense_sections, keyword, dense_weight, self.settings.keyword_weight)
        # The same fusion at chunk level, as scores only (building nodes for all of BM25's best
        # chunks would cost more than the search): the dense hits and BM25's best chunks.
        chunk_scores = self._keyword_scores(chunks, sub, keyword_scores)
        best_chunks = (
            top_rows(chunk_scores, k * self.settings.section_chunks)
            if chunk_scores is not None
            else []
        )
        chunk_fused: dict[str, float] = defaultdict(float)
        for rank, hit in enumerate(dense):
            chunk_fused[hit.node.node_id] += rrf(dense_weight, rank)
        for rank, row in enumerate(best_chunks):
            chunk_fused[chunks.ids[row]] += rrf(self.settings.keyword_weight, rank)
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

    def first_stage(self, query: str) -> FirstStage | None:
        """The plan and its fused ranking (None when nothing is indexed: then there is no
        keyword index either, and asking it is cheaper than counting Chroma's chunks)."""
        if self.keyword_retriever() is None:
            return None
        plan = plan_queries(query, self._aliases)
        k = self.settings.retrieve_k
        # A long question leans on keywords: only the whole question gets a dense search, since
        # filtered Chroma queries are most of the retrieval time and their hits would barely
        # move the fusion. With the learned ranking on, it is the dense look instead: it embeds
        # every part of the question and compares them with the candidates' stored vectors.
        long = self.is_long(query)
        learned = long and self.settings.rerank_pool > 1
        dense_plan = [] if learned else plan[:1] if long else plan
        texts = list(dict.fromkeys(sub.text for sub in (plan if learned else dense_plan)))
        # alone, the question; its claims, shorter, together (a batch pads to its longest text)
        vectors = [self.kb.embedder.get_query_embedding(texts[0])]
        if len(texts) > 1:
            vectors += self.kb.embedder.get_text_embedding_batch(texts[1:])
        embeddings = dict(zip(texts, vectors, strict=True))
        by_filter: dict[tuple, list[SubQuery]] = defaultdict(list)
        for sub in dense_plan:
            by_filter[(sub.sources, sub.days)].append(sub)
        dense: dict[SubQuery, list[NodeWithScore]] = {}
        for subs in by_filter.values():
            dense.update(zip(subs, self._dense_search(subs, k, embeddings), strict=True))
        weight = self.dense_weight(query)
        # Long questions rank sections; short ones (paraphrases of one fact, a few words that
        # one chunk holds) rank chunks, so two good chunks of one section can both be shown.
        rank = self._rank_sections if long else self._rank_chunks
        keyword_scores: dict[tuple[int, SubQuery], np.ndarray | None] = {}
        ranked_lists = [rank(sub, dense.get(sub, []), weight, keyword_scores) for sub in plan]
        # one list, or all of them in the planned order
        candidates = ranked_lists[0] if len(ranked_lists) == 1 else interleave(ranked_lists)
        vectors_by_text = {t: np.asarray(v, dtype=np.float32) for t, v in embeddings.items()}
        return FirstStage(plan, long, learned, candidates, vectors_by_text, keyword_scores)

    def retrieve(self, query: str) -> Retrieval:
        """Ranked candidates for the question, best first, with the plan that produced them."""
        first = self.first_stage(query)
        if first is None:
            return Retrieval([], [SubQuery(query)])
        candidates = first.candidates
        if first.learned and candidates:
            pool = self.pool(first)
            if pool.rows:
                scores = self.ranker().score(features(pool.signals))
                candidates = self._ranked_pool(first, pool, scores)
        return Retrieval(candidates, first.plan, first.long)

    def pool(self, first: FirstStage) -> Pool:
        """The sections the learned ranking orders and their signals: the first `rerank_pool`
        of the first ranking, and every other section of the articles of its first
        `rerank_expand_docs` (the evidence is often another section of an article the first
        ranking found)."""
        sections, chunks = self._sections, self._chunks
        assert sections is not None and chunks is not None
        first_rows = [sections.rows[c.key] for c in first.candidates[: self.settings.rerank_pool]]
        wanted = list(first_rows)
        for candidate in first.candidates[: self.settings.rerank_expand_docs]:
            wanted += self._article_sections.get(candidate.doc_id, [])
        vector_rows, vectors = self.stored_vectors()
        # a section's chunks that are indexed (all of them in a consistent index)
        members = {
            row: [c for c in self._section_chunks[row] if c in chunks.rows and c in vector_rows]
            for row in dict.fromkeys(wanted)
        }
        rows = [row for row, group in members.items() if group]
        flat = [chunk_id for row in rows for chunk_id in members[row]]
        starts = np.cumsum([0] + [len(members[row]) for row in rows[:-1]])
        plan = first.plan
        question = plan[0].text

        def normalised(index: KeywordIndex, sub: SubQuery) -> np.ndarray:
            scores = self._keyword_scores(index, sub, first.keyword_scores)
            if scores is None or scores.max() <= 0:
                return np.zeros(len(index.ids), dtype=np.float32)
            return scores / scores.max()

        parts = np.stack([first.vectors[sub.text] for sub in plan])
        chunk_cosine = parts @ vectors[[vector_rows[c] for c in flat]].T
        chunk_keyword_rows = [chunks.rows[c] for c in flat]
        chunk_keywords = np.stack([normalised(chunks, sub)[chunk_keyword_rows] for sub in plan])
        named = {source for sub in plan for source in sub.sources}
        windows = [sub.days for sub in plan if sub.days]
        doc_ids = [str(sections.retriever.corpus[row].get("doc_id", "")) for row in rows]
        in_first = set(first_rows)
        signals = PoolSignals(
            is_claim=[i > 0 and sub.text != question for i, sub in enumerate(plan)],
            is_sourced_question=[i > 0 and sub.text == question for i, sub in enumerate(plan)],
            section_keywords=np.stack([normalised(sections, sub)[rows] for sub in plan]),
            chunk_keywords=np.maximum.reduceat(chunk_keywords, starts, axis=1),
            cosine=np.maximum.reduceat(chunk_cosine, starts, axis=1),
            doc_ids=doc_ids,
            from_named_source=np.isin(sections.sources[rows], list(named)),
            in_named_date_window=np.array(
                [any(low <= day <= high for low, high in windows) for day in sections.days[rows]],
                dtype=bool,
            ),
            position=np.array([self._section_position[row] for row in rows]),
            sections_in_article=np.array([len(self._article_sections[d]) for d in doc_ids]),
            first_stage=np.array([row in in_first for row in rows], dtype=bool),
        )
        return Pool(
            rows,
            signals,
            flat,
            [*starts.tolist(), len(flat)],
            chunk_keywords + chunk_cosine,
            chunk_cosine[0],
        )

    def _ranked_pool(self, first: FirstStage, pool: Pool, scores: np.ndarray) -> list[Candidate]:
        """The pool in the learned order, cut to `rerank_pool`, then the rest of the first
        ranking. A section the first ranking did not hold shows its chunk that best matches a
        part of the question; each shown chunk's cosine with the question is kept for the
        relevance gate."""
        sections, chunks = self._sections, self._chunks
        assert sections is not None and chunks is not None
        bounds, flat = pool.chunk_bounds, pool.chunk_ids
        in_pool = {sections.rows[c.key]: c for c in first.candidates[: self.settings.rerank_pool]}
        question_scores = self._keyword_scores(sections, first.plan[0], first.keyword_scores)
        ranked: list[Candidate] = []
        for j in np.argsort(-scores, kind="stable")[: self.settings.rerank_pool].tolist():
            row, span = pool.rows[j], range(bounds[j], bounds[j + 1])
            candidate = in_pool.get(row)
            if candidate is None:
                focus = max(span, key=lambda i: pool.chunk_match[:, i].max())
                node = chunks.node(chunks.rows[flat[focus]])
                keyword = float(question_scores[row]) if question_scores is not None else None
                candidate = Candidate(
                    NodeWithScore(node=node), 0.0, None, keyword, section=sections.node(row)
                )
            else:
                focus = next((i for i in span if flat[i] == candidate.chunk_id), span[0])
            candidate.score = float(scores[j])
            candidate.node.score = candidate.score
            candidate.dense_similarity = float(pool.chunk_question_cosine[focus])
            ranked.append(candidate)
        kept = {c.key for c in ranked}
        return ranked + [c for c in first.candidates if c.key not in kept]


def rrf(weight: float, rank: int) -> float:
    """A list's weighted reciprocal-rank contribution for the item at 0-based `rank`."""
    return weight / (RRF_K + rank + 1)


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
        candidate.score += rrf(dense_weight, rank)
        candidate.dense_similarity = cosine_from_chroma(hit.score or 0.0)
    for rank, hit in enumerate(keyword):
        candidate = by_id.setdefault(hit.node.node_id, Candidate(hit, 0.0, None, None))
        candidate.score += rrf(keyword_weight, rank)
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

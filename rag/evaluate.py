"""`rag eval`: the evaluation suite. Retrieval, answers, refusals, citations and latency of the
same `Engine.answer()` the page uses, side by side with llama-index's own `CitationQueryEngine`.

The corpus is ingested into a collection of its own, named by a hash of the corpus content and
the chunking/embedding settings, so it never mixes with the user's documents and a re-run finds
it already built. Every number comes from the pure functions in rag/metrics.py; the only model
judgement is whether a sentence is supported by the passages it cites (`prompts/judge.txt`).

Output: reports (`<name>.md`, `<name>.html`, `<name>.json`, plots) in `--out`, one line appended
to evals/history.jsonl, optional gate checks, and, last on stdout, one JSON object of the summary.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import json
import logging
import math
import os
import random
import re
import shlex
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rag import metrics, prompts
from rag.config import Settings
from rag.events import Final, Passage, Searching, Sources, Turn
from rag.ingest import CHUNK_SCHEMA, LoadedDocument, clean_text, derive_title
from rag.llm import LLM, LLMError, Message
from rag.rank import HeldOutRanker, TreeRanker, trained_on

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
SEED_DIR = REPO / "evals" / "seed"
DEFAULT_HISTORY = Path("evals/history.jsonl")
TOP = 10  # ranked list length for the retrieval metrics
BASELINE_TOP_K = 3  # passages CitationQueryEngine answers from (our top_k default, too)
MAX_FAILURE_ROWS = 60

RETRIEVAL_KEYS = (
    "hits@4",
    "hits@10",
    "mrr@10",
    "map@10",
    "evidence_recall@10",
    "all_gold_docs@10",
)
ANSWER_KEYS = (
    "correct_rate",
    "answer_accuracy",
    "answer_accuracy_words",
    "answer_f1",
    "refusal_rate_unanswerable",
    "wrong_refusal_rate_answerable",
    "citation_validity",
    "citation_recall",
    "citation_precision",
)
LATENCY_KEYS = (
    "retrieval_ms_p50",
    "retrieval_ms_p95",
    "first_token_ms_p50",
    "first_token_ms_p95",
    "total_ms_p50",
    "total_ms_p95",
)
TOKEN_KEYS = ("prompt_tokens_mean", "completion_tokens_mean")
# Metrics where lower is better (ratios and plots read them the other way round).
LOWER_IS_BETTER = {"wrong_refusal_rate_answerable", *LATENCY_KEYS, *TOKEN_KEYS, "errors"}
SETTINGS_THAT_MATTER = (
    "chunk_size",
    "chunk_overlap",
    "embed_model",
    "llm_model",
    "llm_max_tokens",
    "retrieve_k",
    "section_chunks",
    "top_k",
    "context_tokens",
    "long_question_context_tokens",
    "dense_weight",
    "keyword_weight",
    "min_dense_score",
    "rerank_pool",
    "rerank_expand_docs",
    "ranker_model",
    "judge_model",
)

_CITATION_MARK = re.compile(r"\s*\[\s*\d+(?:\s*(?:[,;\-\u2013]|and)\s*\d+)*\s*\]")
# CitationQueryEngine's prompt asks the model to "indicate" that no source helps; it words that
# in ways rag's refusal detector was not written for.
_BASELINE_REFUSAL = re.compile(
    r"\bnone of the (?:provided |given )?(?:sources|passages|documents)\b|"
    r"\b(?:sources|passages|documents) (?:are|were) not helpful\b",
    re.IGNORECASE,
)


class EvalError(RuntimeError):
    """Bad input for the eval (missing file, malformed JSONL, bad gate); message for the user."""


# ---------------------------------------------------------------------------------------------
# Data


@dataclass
class Question:
    id: str
    text: str
    answers: list[str]
    answerable: bool
    question_type: str
    gold_doc_ids: list[str]
    facts: list[str]
    history: list[Turn] = field(default_factory=list)

    @classmethod
    def from_record(cls, record: dict[str, Any], index: int) -> Question:
        answers = [str(a) for a in record.get("answers") or []]
        return cls(
            id=str(record.get("id") or f"q{index:04d}"),
            text=str(record["question"]),
            answers=answers,
            answerable=bool(record.get("answerable", bool(answers))),
            question_type=str(record.get("question_type") or "unknown"),
            gold_doc_ids=[str(d) for d in record.get("gold_doc_ids") or []],
            facts=[str(e["fact"]) for e in record.get("evidence") or [] if e.get("fact")],
            history=[
                Turn(str(t.get("question", "")), str(t.get("answer", "")))
                for t in record.get("history") or []
            ],
        )


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise EvalError(f"no such file: {path}")
    rows = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise EvalError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
    return rows


_ISO_DATE = re.compile(r"\s*(\d{4})-(\d{2})-(\d{2})")


def normalise_date(value: Any) -> str | None:
    """'2023-11-27 08:45:59.000000000Z', '2023-09-26T21:11:15+00:00' -> '2023-11-27'."""
    if not value:
        return None
    text = str(value).strip()
    if match := _ISO_DATE.match(text):
        return "-".join(match.groups())
    for fmt in ("%Y/%m/%d", "%d %B %Y", "%B %d, %Y", "%d %b %Y", "%b %d, %Y"):
        try:
            return datetime.strptime(text, fmt).date().isoformat()
        except ValueError:
            continue
    return None


def corpus_document(record: dict[str, Any]) -> LoadedDocument:
    """One corpus record as the knowledge base's document (cleaned like an ingested file)."""
    if not record.get("doc_id"):
        raise EvalError(f"corpus record without doc_id: {str(record)[:80]}")
    text, header_date = clean_text(str(record.get("text") or ""))
    title = str(record.get("title") or "").strip()
    return LoadedDocument(
        doc_id=str(record["doc_id"]),
        text=text,
        title=title or derive_title(text),
        published=normalise_date(record.get("published_at")) or header_date,
        source=record.get("source") or None,
        path=record.get("url") or None,
        title_from_text=not title,
    )


def collection_name(corpus_bytes: bytes, settings: Settings) -> str:
    """The eval's own collection: keyed by corpus content and chunking/embedding settings."""
    config = json.dumps(
        {
            "chunk_size": settings.chunk_size,
            "chunk_overlap": settings.chunk_overlap,
            "embed_model": settings.embed_model,
            "embed_base_url": settings.embed_base_url,
            "chunk_schema": CHUNK_SCHEMA,
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(corpus_bytes + b"\x00" + config.encode()).hexdigest()
    return f"eval-{digest[:12]}"


RANKER_FOLDS = REPO / "evals" / "ranker-folds"  # written by evals/train_ranker.py


def held_out_ranking(
    questions_bytes: bytes, settings: Settings
) -> tuple[HeldOutRanker | None, str | None]:
    """When the learned ranking's model was fitted on the questions being measured (it records
    a hash of its training questions), the fold models that `evals/train_ranker.py` fitted on
    parts of them, to rank each question with one that never saw it; and a note for the report
    saying which was done. (None, None) when the model was fitted on other questions."""
    try:
        shipped = trained_on(settings.ranker_model)
    except ValueError:
        return None, None
    digest = hashlib.sha256(questions_bytes).hexdigest()[:12]
    if shipped.get("questions_sha256_12") != digest:
        return None, None
    folds = []
    for path in sorted(RANKER_FOLDS.glob("fold-*.json")):
        try:
            if trained_on(path).get("questions_sha256_12") == digest:
                folds.append(TreeRanker.load(path))
        except ValueError:
            continue
    if len(folds) >= 2:
        inside = RANKER_FOLDS.is_relative_to(REPO)
        shown = RANKER_FOLDS.relative_to(REPO) if inside else RANKER_FOLDS
        return HeldOutRanker(folds), (
            "The learned ranking's model (rag/rank.py) was fitted on these questions, so each "
            "question here is ranked by one of its fold models instead "
            f"(`{shown}`, {len(folds)} folds, written by "
            "`evals/train_ranker.py`): a model fitted on the other questions, never on it."
        )
    return None, (
        "The learned ranking's model (rag/rank.py) was fitted on these questions "
        f"({shipped.get('n_questions', '?')} of them, `evals/train_ranker.py`), and no "
        "fold models were found to rank them held out: these figures are not held out; see "
        "the ranker's report (evals/reports/ranker) for held-out ones."
    )


def stratified_sample(questions: Sequence[Question], n: int, seed: int) -> list[Question]:
    """A fixed sample of n questions, question types in proportion (largest remainder), each
    type at least once when n allows; the original order is kept."""
    if n >= len(questions):
        return list(questions)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, q in enumerate(questions):
        groups[q.question_type].append(i)
    types = sorted(groups)
    exact = {t: n * len(groups[t]) / len(questions) for t in types}
    quota = {t: math.floor(exact[t]) for t in types}
    by_remainder = sorted(types, key=lambda t: (-(exact[t] - quota[t]), t))
    for t in by_remainder[: n - sum(quota.values())]:
        quota[t] += 1
    if n >= len(types):
        for t in types:
            if quota[t] == 0:
                donor = max(types, key=lambda d: (quota[d], d))
                quota[donor] -= 1
                quota[t] = 1
    rng = random.Random(seed)
    chosen: set[int] = set()
    for t in types:
        chosen.update(rng.sample(groups[t], quota[t]))
    return [q for i, q in enumerate(questions) if i in chosen]


# ---------------------------------------------------------------------------------------------
# Per-question measurements


def strip_citations(text: str) -> str:
    return " ".join(_CITATION_MARK.sub("", text).split())


def retrieval_measures(q: Question, ranked: Sequence[tuple[str, str]]) -> dict[str, Any] | None:
    """Metrics of one ranked (doc_id, text) list; None for questions that have nothing to find."""
    if not q.answerable or not (q.facts or q.gold_doc_ids):
        return None
    ranked = list(ranked)[:TOP]
    flags = metrics.relevance_flags(ranked, q.facts, q.gold_doc_ids)
    facts = list(dict.fromkeys(f for f in q.facts if metrics.squash(f)))
    n_relevant = len(facts) or len(set(q.gold_doc_ids))
    texts = [text for _, text in ranked]
    doc_ids = [doc_id for doc_id, _ in ranked]
    first = next((i + 1 for i, flag in enumerate(flags) if flag), None)
    return {
        "hits@4": metrics.hits_at_k(flags, 4),
        "hits@10": metrics.hits_at_k(flags, 10),
        "mrr@10": metrics.reciprocal_rank_at_k(flags, 10),
        "map@10": metrics.average_precision_at_k(flags, 10, n_relevant),
        "evidence_recall@10": metrics.evidence_recall_at_k(texts, facts, 10) if facts else None,
        "all_gold_docs@10": (
            metrics.all_gold_docs_at_k(doc_ids, q.gold_doc_ids, 10) if q.gold_doc_ids else None
        ),
        "first_relevant_rank": first,
    }


def contains_words(prediction: str, golds: Sequence[str]) -> float:
    """Like `metrics.answer_accuracy`, but the gold must occur as whole words, and a Yes/No gold
    must be the answer's verdict (its first word). There, gold "No" is found in "not", "cannot",
    "announced" or a quoted "No. 3", so with Yes/No golds (half of MultiHop-RAG) nearly any
    answer counts as correct. Reported next to it, not instead."""
    normalised = metrics.normalize_answer(prediction)
    pred = f" {normalised} "
    first = normalised.split()[0] if normalised else ""
    for gold in map(metrics.normalize_answer, golds):
        if gold in ("yes", "no"):
            if first == gold:
                return 1.0
        elif gold and f" {gold} " in pred:
            return 1.0
    return 0.0


def answer_measures(
    q: Question, answer: str, refused: bool, shown: Sequence[int], error: str | None
) -> dict[str, Any]:
    """Accuracy, F1, correctness and citation validity of one answer."""
    bare = strip_citations(answer)
    cited = metrics.cited_numbers(answer)
    answered = not refused and not error
    accuracy = words = f1 = None
    if q.answerable:
        accuracy = metrics.answer_accuracy(bare, q.answers) if answered else 0.0
        words = contains_words(bare, q.answers) if answered else 0.0
        f1 = metrics.token_f1(bare, q.answers) if answered else 0.0
    correct = (accuracy == 1.0) if q.answerable else (refused and not error)
    return {
        "accuracy": accuracy,
        "accuracy_words": words,
        "f1": f1,
        "correct": bool(correct),
        "cited": cited,
        # every cited number names a shown passage, and there is at least one citation
        "citation_valid": (bool(cited) and set(cited) <= set(shown)) if answered else None,
    }


class Judge:
    """Does a set of passages support a claim? One short LLM call, a YES/NO answer."""

    def __init__(self, llm: LLM) -> None:
        self.llm = llm
        self.calls = 0
        self.unparsed = 0
        self.errors = 0

    def supported(self, passages: Sequence[Passage], claim: str) -> bool:
        text = "\n\n".join(f"Title: {p.title}\n{' '.join(p.text.split())}" for p in passages)
        messages = prompts.conversation("judge", passages=text, claim=claim)
        self.calls += 1
        try:
            reply = "".join(self.llm.stream(messages, max_tokens=4))
        except LLMError as exc:
            self.errors += 1
            log.warning("judge failed: %s", exc)
            return False
        verdict = parse_verdict(reply)
        if verdict is None:
            self.unparsed += 1
            log.info("judge reply not YES/NO: %r", reply)
            return False
        return verdict


def parse_verdict(reply: str) -> bool | None:
    """The judge's first YES or NO (any case, any punctuation around it); None if neither."""
    match = re.search(r"\b(yes|no)\b", reply, re.IGNORECASE)
    return None if match is None else match.group(1).lower() == "yes"


def judge_citations(judge: Judge, answer: str, passages: Sequence[Passage]) -> dict[str, Any]:
    """ALCE citation recall and precision of one answer.

    Recall: a sentence counts when the concatenation of its cited passages supports it (one call
    per cited sentence). Precision: a citation counts when the sentence is supported and the
    citation either supports it alone or is needed (removing it loses support); extra calls only
    for sentences with more than one citation. Citations of unshown passages never count.
    """
    by_n = {p.n: p for p in passages}
    supported: list[bool] = []
    relevant: list[bool] = []
    judged: list[dict[str, Any]] = []
    for sentence in metrics.split_sentences(answer):
        claim = strip_citations(sentence)
        if not claim:
            continue
        cited = metrics.cited_numbers(sentence)
        shown = [n for n in cited if n in by_n]
        relevant.extend(False for n in cited if n not in by_n)
        if not shown:
            supported.append(False)
            judged.append({"sentence": claim, "cited": cited, "supported": False})
            continue
        ok = judge.supported([by_n[n] for n in shown], claim)
        supported.append(ok)
        judged.append({"sentence": claim, "cited": cited, "supported": ok})
        if not ok or len(shown) == 1:
            relevant.extend([ok] * len(shown))
            continue
        for n in shown:
            if judge.supported([by_n[n]], claim):
                relevant.append(True)
            else:
                rest = [by_n[m] for m in shown if m != n]
                relevant.append(not judge.supported(rest, claim))
    return {
        "citation_recall": metrics.citation_recall(supported) if supported else None,
        "citation_precision": metrics.citation_precision(relevant) if relevant else None,
        "judged": judged,
    }


def _base_row(q: Question) -> dict[str, Any]:
    return {
        "id": q.id,
        "question": q.text,
        "question_type": q.question_type,
        "answerable": q.answerable,
        "golds": q.answers,
        "gold_doc_ids": q.gold_doc_ids,
        "facts": q.facts,
    }


def _ranked_summary(ranked: Sequence[tuple[str, str, str]]) -> list[dict[str, str]]:
    return [{"doc_id": d, "chunk_id": c, "text": _short(t, 160)} for d, c, t in ranked[:3]]


def _passage_dicts(passages: Sequence[Passage]) -> list[dict[str, Any]]:
    return [{"n": p.n, "doc_id": p.doc_id, "title": p.title, "text": p.text} for p in passages]


# ---------------------------------------------------------------------------------------------
# The two systems


class RecordingLLM:
    """The engine's LLM, passed through; keeps the raw output of the last call (before the
    citation filter and check), so the eval can tell model refusals from check refusals."""

    def __init__(self, inner: LLM) -> None:
        self.inner = inner
        self.description = getattr(inner, "description", "LLM")
        self.last_output: str | None = None

    def stream(self, messages: Sequence[Message], max_tokens: int) -> Iterator[str]:
        self.last_output = None
        pieces: list[str] = []
        for piece in self.inner.stream(messages, max_tokens):
            pieces.append(piece)
            yield piece
        self.last_output = "".join(pieces)

    def prime(self, messages: Sequence[Message]) -> None:
        """Prompt-prefix caching goes to the wrapped model (restored from disk when it can)."""
        from rag.answer import prime

        prime(self.inner, list(messages))


def _candidates(engine: Any, question: str) -> list[tuple[str, str, str]]:
    retrieval = engine.retriever.retrieve(question)
    candidates = getattr(retrieval, "candidates", retrieval)  # a Retrieval, or a plain list
    ranked = []
    for candidate in candidates[:TOP]:
        ranked.append((candidate.doc_id, candidate.key, candidate.unit_text))
    return ranked


def _progress(items: Sequence[Any], desc: str):
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="q", file=sys.stderr, dynamic_ncols=True)


def rag_row(engine: Any, q: Question, recorder: RecordingLLM | None) -> dict[str, Any]:
    """One question through `Engine.answer()` (recorder None: retrieval only)."""
    row = _base_row(q)
    if recorder is None:
        started = time.perf_counter()
        ranked = _candidates(engine, q.text)
        row["question_used"] = q.text
        row["timings"] = {"retrieval_ms": (time.perf_counter() - started) * 1000}
    else:
        recorder.last_output = None
        question_used, passages, result = q.text, [], None
        for event in engine.answer(q.text, q.history):
            if isinstance(event, Searching):
                question_used = event.question_used
            elif isinstance(event, Sources):
                passages = event.passages
            elif isinstance(event, Final):
                result = event.result
        assert result is not None
        ranked = _candidates(engine, question_used)
        raw = recorder.last_output if passages else None
        shown = [p.n for p in passages]
        if not result.refused:
            refused_by = None
        elif not passages:
            refused_by = "retrieval"
        elif raw is not None and metrics.is_refusal_text(raw):
            refused_by = "model"
        else:
            refused_by = "check"
        raw_cited = metrics.cited_numbers(raw or "")
        row.update(
            question_used=question_used,
            answer=result.answer,
            refused=result.refused,
            refused_by=refused_by,
            error=result.error,
            raw_answer=raw,
            raw_citation_valid=(
                bool(raw_cited) and set(raw_cited) <= set(shown)
                if raw and not metrics.is_refusal_text(raw)
                else None
            ),
            passages=_passage_dicts(passages),
            timings=dict(result.timings),
            tokens=dict(result.tokens),
            **answer_measures(q, result.answer, result.refused, shown, result.error),
        )
        row["_passages"] = passages
    row["retrieval"] = retrieval_measures(q, [(d, t) for d, _, t in ranked])
    row["top"] = _ranked_summary(ranked)
    return row


def keyword_row(engine: Any, q: Question) -> dict[str, Any]:
    """Retrieval measures of plain BM25 over the same sections (no plan, no fusion)."""
    row = _base_row(q)
    started = time.perf_counter()
    hits = engine.retriever.keyword_only(q.text, TOP)
    row["timings"] = {"retrieval_ms": (time.perf_counter() - started) * 1000}
    ranked = [
        (str(h.node.metadata.get("doc_id", "")), h.node.get_content(metadata_mode="none"))
        for h in hits
    ]
    row["retrieval"] = retrieval_measures(q, ranked)
    return row


def run_questions(
    engine: Any,
    questions: Sequence[Question],
    recorder: RecordingLLM | None,
    baseline: Baseline | None,
    held_out: HeldOutRanker | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None, list[dict[str, Any]]]:
    """rag and the baseline question by question, in turn, so a machine shared with other
    work slows both alike (each keeps its own fixed prompt prefix in one server slot); BM25 alone
    (retrieval only) beside them. `held_out` (a rag.rank.HeldOutRanker the engine's retriever
    uses) is told each question first."""
    rows: list[dict[str, Any]] = []
    base_rows: list[dict[str, Any]] | None = [] if baseline else None
    keyword_rows: list[dict[str, Any]] = []
    for q in _progress(questions, "questions" if baseline else "rag"):
        if held_out is not None:
            held_out.hold_out(q.id)
        rows.append(rag_row(engine, q, recorder))
        if baseline is not None and base_rows is not None:
            base_rows.append(baseline.row(q))
        keyword_rows.append(keyword_row(engine, q))
    return rows, base_rows, keyword_rows


def _llm_endpoint(llm: Any) -> tuple[str | None, str | None]:
    """(base_url, model) of an OpenAI-compatible LLM; (None, None) for anything else (fakes)."""
    base_url = getattr(llm, "base_url", None)
    model = getattr(getattr(llm, "_llm", None), "model", None)
    return base_url, model


class Baseline:
    """llama-index's own CitationQueryEngine over the same Chroma collection, embedder and LLM
    endpoint. Retrieval-only: its dense retriever alone (VectorStoreIndex's default)."""

    name = "llama-index CitationQueryEngine"

    def __init__(self, engine: Any, settings: Settings, llm: Any = None) -> None:
        from llama_index.core import VectorStoreIndex

        self.index = VectorStoreIndex.from_vector_store(
            engine.kb.vector_store, embed_model=engine.kb.embedder
        )
        self.retriever = self.index.as_retriever(similarity_top_k=TOP)
        self.query_engine = None
        if llm is not None:
            from llama_index.core.query_engine import CitationQueryEngine

            self.query_engine = CitationQueryEngine.from_args(
                self.index, llm=llm, similarity_top_k=BASELINE_TOP_K, streaming=True
            )

    @staticmethod
    def openai_like(base_url: str, model: str, settings: Settings) -> Any:
        from llama_index.llms.openai_like import OpenAILike

        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
        return OpenAILike(
            model=model,
            api_base=base_url,
            api_key=key or "none",
            is_chat_model=True,
            temperature=0.0,
            max_tokens=settings.llm_max_tokens,
            context_window=settings.local_llm_ctx,
            timeout=settings.llm_timeout,
            max_retries=settings.llm_max_retries,
        )

    def row(self, q: Question) -> dict[str, Any]:
        from llama_index.core.schema import QueryBundle

        row = _base_row(q)
        bundle = QueryBundle(query_str=q.text)  # no chat history: it is a query engine
        started = time.perf_counter()
        nodes = self.retriever.retrieve(bundle)
        timings = {"retrieval_ms": (time.perf_counter() - started) * 1000}
        ranked = [
            (
                str(n.node.metadata.get("doc_id", "")),
                n.node.node_id,
                n.node.get_content(metadata_mode="none"),
            )
            for n in nodes
        ]
        row["question_used"] = q.text
        row["retrieval"] = retrieval_measures(q, [(d, t) for d, _, t in ranked])
        row["top"] = _ranked_summary(ranked)
        if self.query_engine is not None:
            row.update(self._answer(q, bundle, nodes[:BASELINE_TOP_K], started, timings))
        row["timings"] = timings
        return row

    def _answer(
        self, q: Question, bundle: Any, nodes: list[Any], started: float, timings: dict
    ) -> dict[str, Any]:
        from llama_index.core.query_engine.citation_query_engine import CITATION_QA_TEMPLATE

        from rag.answer import count_tokens

        def elapsed() -> float:
            return (time.perf_counter() - started) * 1000

        pieces: list[str] = []
        error = None
        source_nodes: list[Any] = []
        try:
            response = self.query_engine.synthesize(bundle, nodes)
            source_nodes = list(response.source_nodes)
            for piece in response.response_gen:
                if piece and "first_token_ms" not in timings:
                    timings["first_token_ms"] = elapsed()
                pieces.append(piece)
        except Exception as exc:  # the baseline must not end the run
            error = f"{type(exc).__name__}: {exc}"
        timings["total_ms"] = elapsed()
        answer = "".join(pieces).strip()
        passages = []
        for i, n in enumerate(source_nodes, 1):
            text = re.sub(r"\ASource \d+:\n", "", n.node.get_content(metadata_mode="none"))
            meta = n.node.metadata
            passages.append(
                Passage(
                    n=i,
                    chunk_id=n.node.node_id,
                    doc_id=str(meta.get("doc_id", "")),
                    title=str(meta.get("title", "")),
                    text=text.strip(),
                    start=0,
                    end=0,
                    published=meta.get("published"),
                    source=meta.get("source"),
                )
            )
        refused = not error and bool(
            metrics.is_refusal_text(answer) or _BASELINE_REFUSAL.search(answer)
        )
        context = "\n\n".join(n.node.get_content(metadata_mode="llm") for n in source_nodes)
        prompt = CITATION_QA_TEMPLATE.format(context_str=context, query_str=q.text)
        return {
            "answer": answer,
            "refused": refused,
            "refused_by": "model" if refused else None,
            "error": error,
            "passages": _passage_dicts(passages),
            "_passages": passages,
            "tokens": {"prompt": count_tokens(prompt), "completion": count_tokens(answer)},
            **answer_measures(q, answer, refused, [p.n for p in passages], error),
        }


def judge_rows(judge: Judge, rows: list[dict[str, Any]], desc: str) -> None:
    todo = [r for r in rows if r.get("answer") and not r.get("refused") and not r.get("error")]
    for row in _progress(todo, f"judging {desc}"):
        row.update(judge_citations(judge, row["answer"], row["_passages"]))


# ---------------------------------------------------------------------------------------------
# Summaries


def _mean(values: Sequence[float | None] | Iterator[float | None]) -> float | None:
    present = [float(v) for v in values if v is not None]
    return sum(present) / len(present) if present else None


def _pct(values: list[float], p: float) -> float | None:
    return None if not values else metrics.percentile(values, p)


def summarize(rows: Sequence[dict[str, Any]], full: bool) -> dict[str, Any]:
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    out: dict[str, Any] = {
        "questions": len(rows),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
    }
    with_retrieval = [r["retrieval"] for r in rows if r.get("retrieval")]
    for key in RETRIEVAL_KEYS:
        out[key] = _mean(m[key] for m in with_retrieval)
    if full:
        out["correct_rate"] = _mean(float(r["correct"]) for r in rows)
        out["answer_accuracy"] = _mean(r["accuracy"] for r in answerable)
        out["answer_accuracy_words"] = _mean(r.get("accuracy_words") for r in answerable)
        out["answer_f1"] = _mean(r["f1"] for r in answerable)
        out["refusal_rate_unanswerable"] = _mean(float(r["refused"]) for r in unanswerable)
        out["wrong_refusal_rate_answerable"] = _mean(float(r["refused"]) for r in answerable)
        validity = [float(r["citation_valid"]) for r in rows if r["citation_valid"] is not None]
        out["citation_validity"] = _mean(validity)
        out["citation_recall"] = _mean(r.get("citation_recall") for r in rows)
        out["citation_precision"] = _mean(r.get("citation_precision") for r in rows)
    for name in ("retrieval_ms", "first_token_ms", "total_ms"):
        values = [r["timings"][name] for r in rows if name in r.get("timings", {})]
        if name != "retrieval_ms" and not full:
            continue
        out[f"{name}_p50"] = _pct(values, 50)
        out[f"{name}_p95"] = _pct(values, 95)
    if full:
        with_tokens = [r["tokens"] for r in rows if r.get("tokens")]
        out["prompt_tokens_mean"] = _mean(t.get("prompt") for t in with_tokens)
        out["completion_tokens_mean"] = _mean(t.get("completion") for t in with_tokens)
        out["errors"] = sum(1 for r in rows if r.get("error"))
    return {k: _round(k, v) for k, v in out.items()}


def _round(key: str, value: Any) -> Any:
    if not isinstance(value, float):
        return value
    return round(value, 1) if key.endswith(("_ms_p50", "_ms_p95", "_mean")) else round(value, 4)


def per_type(rows: Sequence[dict[str, Any]], full: bool) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[row["question_type"]].append(row)
    return {t: summarize(groups[t], full) for t in sorted(groups)}


# ---------------------------------------------------------------------------------------------
# Gate


def load_gate(path: Path) -> dict[str, float]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise EvalError(f"cannot read gate file {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise EvalError(f"gate file {path} is not valid JSON ({exc.msg})") from exc
    if not isinstance(data, dict):
        raise EvalError(f"gate file {path} must hold a JSON object of thresholds")
    gate = {}
    for key, value in data.items():
        if key.startswith("_"):  # comments
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise EvalError(f"gate file {path}: threshold of {key!r} must be a number")
        gate[key] = float(value)
    return gate


def check_gate(summary: dict[str, Any], gate: dict[str, float]) -> list[tuple[bool, str]]:
    """(passed, line) per threshold. `x_max` bounds metric x from above; `x_min` or a bare
    metric name bounds it from below. A metric the run did not measure fails."""
    checks = []
    for key, threshold in gate.items():
        if key.endswith("_max"):
            metric, upper = key[: -len("_max")], True
        else:
            metric, upper = key.removesuffix("_min"), False
        value = summary.get(metric)
        if not isinstance(value, int | float):
            checks.append((False, f"FAIL  {metric}: not measured by this run"))
            continue
        ok = value <= threshold + 1e-9 if upper else value >= threshold - 1e-9
        sign = "<=" if upper else ">="
        verdict = "PASS" if ok else "FAIL"
        checks.append((ok, f"{verdict}  {metric} = {value:g} ({sign} {threshold:g})"))
    return checks


# ---------------------------------------------------------------------------------------------
# History and provenance


def git_commit(start: Path | None = None) -> str | None:
    """The checked-out commit, read from .git without running git; None outside a checkout."""
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        git = folder / ".git"
        if git.is_file():  # a worktree: "gitdir: <path>"
            text = git.read_text(encoding="utf-8").strip()
            if text.startswith("gitdir:"):
                git = (folder / text.split(":", 1)[1].strip()).resolve()
        if not git.is_dir():
            continue
        try:
            head = (git / "HEAD").read_text(encoding="utf-8").strip()
        except OSError:
            return None
        if not head.startswith("ref:"):
            return head or None
        ref = head.split(":", 1)[1].strip()
        roots = [git]
        if (git / "commondir").is_file():
            roots.append((git / (git / "commondir").read_text(encoding="utf-8").strip()).resolve())
        for root in roots:
            if (root / ref).is_file():
                return (root / ref).read_text(encoding="utf-8").strip()
            packed = root / "packed-refs"
            if packed.is_file():
                for line in packed.read_text(encoding="utf-8").splitlines():
                    parts = line.split()
                    if len(parts) == 2 and parts[1] == ref:
                        return parts[0]
        return None
    return None


def code_fingerprint() -> str | None:
    """Hash of the code, ranker weights and prompts that ran: a commit hash misses uncommitted
    edits."""
    digest = hashlib.sha256()
    files = sorted(REPO.glob("rag/*.py")) + sorted(REPO.glob("rag/*.json"))
    files += sorted(prompts.prompts_dir().glob("*.txt"))
    if not files:
        return None
    for path in files:
        digest.update(path.name.encode() + b"\x00" + path.read_bytes() + b"\x00")
    return digest.hexdigest()[:12]


def settings_snapshot(settings: Settings) -> dict[str, Any]:
    snapshot = {name: getattr(settings, name) for name in SETTINGS_THAT_MATTER}
    snapshot["llm"] = settings.llm_base_url or "shipped (local)"
    snapshot["judge"] = settings.judge_base_url or "answering LLM"
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in snapshot.items()}


# ---------------------------------------------------------------------------------------------
# Reports: one list of blocks rendered both as Markdown and as HTML


Block = tuple[Any, ...]


def _fmt(value: Any, key: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if key.endswith(("_ms_p50", "_ms_p95", "_mean")):
            return f"{value:,.0f}" if key.endswith(("_p50", "_p95")) else f"{value:,.1f}"
        return f"{value:.3f}"
    return str(value)


def _ratio(rag: Any, base: Any) -> str:
    if not isinstance(rag, int | float) or not isinstance(base, int | float) or not base:
        return "–"
    return f"{rag / base:.2f}×"


def _short(text: str | None, limit: int = 220) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _metric_table(
    summary: dict,
    base: dict | None,
    keys: Sequence[str],
    names: tuple[str, str] = ("rag", "baseline"),
) -> Block:
    headers = ["metric", names[0]] + ([names[1], f"{names[0]} / {names[1]}"] if base else [])
    rows = []
    for key in keys:
        if key not in summary and not (base and key in base):
            continue
        row = [key, _fmt(summary.get(key), key)]
        if base:
            row += [_fmt(base.get(key), key), _ratio(summary.get(key), base.get(key))]
        rows.append(row)
    return ("table", headers, rows)


def _type_table(types: dict, base_types: dict | None, keys: Sequence[str]) -> Block:
    headers = ["question type", "n", *keys]
    rows = []
    for name, summary in types.items():
        base = (base_types or {}).get(name)
        cells = [name, str(summary["questions"])]
        for key in keys:
            cell = _fmt(summary.get(key), key)
            if base is not None:
                cell += f" ({_fmt(base.get(key), key)})"
            cells.append(cell)
        rows.append(cells)
    return ("table", headers, rows)


def _cited_cell(row: dict) -> str:
    passages = {p["n"]: p for p in row.get("passages") or []}
    cited = [n for n in row.get("cited") or [] if n in passages]
    label, numbers = ("cited", cited) if cited else ("shown, none cited", list(passages))
    if not numbers:
        return "(no passage shown)"
    parts = [f"[{n}] {passages[n]['doc_id']}: {_short(passages[n]['text'], 160)}" for n in numbers]
    return f"{label}: " + " ".join(parts)


def _failure_blocks(rows: list[dict], base_rows: list[dict] | None, full: bool) -> list[Block]:
    base_by_id = {r["id"]: r for r in base_rows or []}
    if full:
        failures = [
            r for r in rows if not r["correct"] or r["citation_valid"] is False or r["error"]
        ]
        headers = ["id", "type", "question", "answer", "gold", "cited passages"]
        if base_rows is not None and any("answer" in r for r in base_rows):
            headers.append("baseline answer")
        table = []
        for r in failures[:MAX_FAILURE_ROWS]:
            answer = r["answer"] if not r["error"] else f"ERROR: {r['error']}"
            if r["refused"]:
                answer += f" (refused by {r['refused_by']})"
            gold = " | ".join(r["golds"]) if r["answerable"] else "(unanswerable: refuse)"
            cells = [r["id"], r["question_type"], _short(r["question"], 160), _short(answer)]
            cells += [_short(gold, 120), _cited_cell(r)]
            if len(headers) == 7:
                cells.append(_short(base_by_id.get(r["id"], {}).get("answer"), 200))
            table.append(cells)
        intro = (
            f"{len(failures)} of {len(rows)} questions wrong (answerable: gold not in the answer "
            "or refused; unanswerable: not refused), with an invalid citation, or an error."
        )
    else:
        failures = [r for r in rows if r.get("retrieval") and not r["retrieval"]["hits@10"]]
        headers = ["id", "type", "question", "gold evidence", "top retrieved"]
        table = []
        for r in failures[:MAX_FAILURE_ROWS]:
            top = " ".join(f"{t['doc_id']}: {_short(t['text'], 120)}" for t in r["top"][:2])
            evidence = " | ".join(_short(f, 120) for f in r["facts"][:2])
            table.append(
                [r["id"], r["question_type"], _short(r["question"], 160), evidence or "–", top]
            )
        intro = f"{len(failures)} answerable questions with no relevant chunk in the top 10."
    if len(failures) > MAX_FAILURE_ROWS:
        intro += f" The first {MAX_FAILURE_ROWS} are listed; all rows are in the JSON report."
    return [("h2", "Failures"), ("p", intro), ("table", headers, table)]


def _plots(
    out: Path,
    name: str,
    summary: dict,
    base: dict | None,
    types: dict,
    base_types: dict | None,
    rows: list[dict],
    base_rows: list[dict] | None,
    full: bool,
) -> list[tuple[str, Path]]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed (pip install '.[eval]'): no plots")
        return []
    plots: list[tuple[str, Path]] = []
    colors = {"rag": "#2b6cb0", "baseline": "#b7791f"}

    def save(fig: Any, suffix: str, title: str) -> None:
        path = out / f"{name}-{suffix}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        plots.append((title, path))

    def paired_bars(ax: Any, labels: list[str], ours: list[float], theirs: list[float] | None):
        """rag's bars, with the baseline's beside them when there is one."""
        width = 0.4 if theirs is not None else 0.6
        xs = range(len(labels))
        shift = width / 2 if theirs is not None else 0
        ax.bar([x - shift for x in xs], ours, width, label="rag", color=colors["rag"])
        if theirs is not None:
            ax.bar(
                [x + shift for x in xs], theirs, width, label="baseline", color=colors["baseline"]
            )
        ax.set_xticks(list(xs), labels, rotation=35, ha="right")
        ax.set_ylim(0, 1.2)
        ax.legend(loc="upper center", ncol=2)

    keys = [k for k in (*RETRIEVAL_KEYS, *ANSWER_KEYS) if summary.get(k) is not None]
    if keys:
        fig, ax = plt.subplots(figsize=(max(6, 0.75 * len(keys) + 2), 4))
        paired_bars(
            ax,
            keys,
            [summary[k] for k in keys],
            [base.get(k) or 0 for k in keys] if base else None,
        )
        ax.set_title("Metrics (higher is better, except wrong_refusal_rate)")
        save(fig, "metrics", "Metrics: rag vs baseline")

    panels = [("hits@10", "Hits@10 (answerable)")]
    if full:
        panels.append(("correct_rate", "Correct (answer has gold / refused unanswerable)"))
    panel_width = max(6, 1.1 * len(types) + 2)
    fig, axes = plt.subplots(1, len(panels), figsize=(panel_width * len(panels), 4))
    axes = axes if len(panels) > 1 else [axes]
    for ax, (key, title) in zip(axes, panels, strict=True):
        names = [t for t in types if types[t].get(key) is not None]
        paired_bars(
            ax,
            names,
            [types[t].get(key) or 0 for t in names],
            [(base_types.get(t) or {}).get(key) or 0 for t in names] if base_types else None,
        )
        ax.set_title(title)
    save(fig, "types", "Per question type")

    latency_key = "total_ms" if full else "retrieval_ms"
    series = [("rag", [r["timings"][latency_key] for r in rows if latency_key in r["timings"]])]
    if base_rows:
        values = [r["timings"][latency_key] for r in base_rows if latency_key in r["timings"]]
        series.append(("baseline", values))
    if any(values for _, values in series):
        fig, ax = plt.subplots(figsize=(7, 4))
        for label, values in series:
            if values:
                ax.hist(values, bins=30, alpha=0.6, label=label, color=colors[label])
        ax.set_xlabel(f"{latency_key} (ms)")
        ax.set_ylabel("questions")
        ax.set_title(f"Latency: {latency_key}")
        ax.legend()
        save(fig, "latency", f"Latency histogram ({latency_key})")
    return plots


def render_markdown(blocks: Sequence[Block]) -> str:
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind == "h1":
            lines += [f"# {block[1]}", ""]
        elif kind == "h2":
            lines += [f"## {block[1]}", ""]
        elif kind == "p":
            lines += [block[1], ""]
        elif kind == "code":
            lines += ["```", block[1], "```", ""]
        elif kind == "table":
            headers, rows = block[1], block[2]
            lines.append("| " + " | ".join(cell(h) for h in headers) + " |")
            lines.append("|" + "|".join("---" for _ in headers) + "|")
            lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
            lines.append("")
        elif kind == "img":
            lines += [f"![{block[1]}]({block[2].name})", ""]
    return "\n".join(lines)


def render_html(blocks: Sequence[Block], title: str) -> str:
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{esc(title)}</title><style>",
        "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}",
        "table{border-collapse:collapse;margin:1em 0;font-size:14px}",
        "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}",
        "th{background:#f2f2f2}code,pre{background:#f6f6f6;padding:2px 4px}",
        "pre{padding:8px;white-space:pre-wrap}img{max-width:100%}",
        "</style></head><body>",
    ]
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2"):
            parts.append(f"<{kind}>{esc(block[1])}</{kind}>")
        elif kind == "p":
            text = esc(block[1])
            text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
            parts.append(f"<p>{text}</p>")
        elif kind == "code":
            parts.append(f"<pre>{esc(block[1])}</pre>")
        elif kind == "table":
            parts.append("<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in block[1]) + "</tr>")
            for row in block[2]:
                parts.append("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>")
            parts.append("</table>")
        elif kind == "img":
            data = base64.b64encode(block[2].read_bytes()).decode()
            parts.append(
                f"<figure><img alt='{esc(block[1])}' src='data:image/png;base64,{data}'>"
                f"<figcaption>{esc(block[1])}</figcaption></figure>"
            )
    parts.append("</body></html>")
    return "\n".join(parts)


@dataclass
class RunInfo:
    name: str
    dataset: str
    command: str
    corpus: Path
    questions: Path
    collection: str
    full: bool
    baseline_name: str | None
    settings: dict[str, Any]
    commit: str | None
    code: str | None  # hash of rag/*.py and prompts/*.txt: tells uncommitted changes apart
    timestamp: str
    ingest: dict[str, float]  # added, unchanged, chunks; seconds (embedding and writing)
    judge: dict[str, Any] | None
    notes: list[str]
    load: dict[str, Any] = field(default_factory=dict)


def _ingest_speed(ingest: dict[str, float]) -> str:
    """' in 301 s (97.4 chunks/s); keyword indexes built in 12 s' when chunks were written."""
    seconds = ingest.get("seconds")
    if not ingest.get("chunks") or not seconds:
        return ""
    text = f" in {seconds:.0f} s ({ingest['chunks'] / seconds:.1f} chunks/s)"
    if ingest.get("keyword_index_seconds") is not None:
        text += f"; keyword indexes built in {ingest['keyword_index_seconds']:.0f} s"
    return text


def write_report(
    out: Path,
    info: RunInfo,
    summary: dict,
    base: dict | None,
    types: dict,
    base_types: dict | None,
    rows: list[dict],
    base_rows: list[dict] | None,
    keyword: dict[str, Any] | None = None,
) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    mode = "answers + retrieval" if info.full else "retrieval only"
    blocks: list[Block] = [
        ("h1", f"rag eval: {info.dataset} ({mode})"),
        ("p", "Produced by:"),
        ("code", info.command),
        (
            "p",
            f"{info.timestamp} · commit {info.commit or 'unknown'} (code {info.code}) · "
            f"{summary['questions']} questions ({summary['answerable']} answerable, "
            f"{summary['unanswerable']} unanswerable) · corpus `{info.corpus}` · questions "
            f"`{info.questions}` · collection `{info.collection}` (ingest: "
            f"{info.ingest['added']} added, {info.ingest['unchanged']} already there, "
            f"{info.ingest['chunks']} chunks written{_ingest_speed(info.ingest)}).",
        ),
        ("p", "Settings: " + ", ".join(f"{k}={v}" for k, v in info.settings.items())),
    ]
    if info.load:
        blocks.append(
            (
                "p",
                f"Machine: {info.load['cpus']} CPUs; load average {info.load['start']} at the "
                f"start, {info.load['end']} at the end (latencies depend on it: the machine may "
                "be shared).",
            )
        )
    if info.baseline_name:
        blocks.append(("p", f"Baseline: {info.baseline_name}."))
    blocks += [("p", note) for note in info.notes]
    blocks += [
        ("h2", "Summary"),
        _metric_table(summary, base, [*RETRIEVAL_KEYS, *ANSWER_KEYS]),
        ("h2", "Latency and tokens"),
        _metric_table(summary, base, [*LATENCY_KEYS, *TOKEN_KEYS, "errors"]),
    ]
    if info.judge:
        blocks.append(
            (
                "p",
                f"Citation judge: {info.judge['model']}; {info.judge['calls']} calls, "
                f"{info.judge['unparsed']} replies not YES/NO (counted NO), "
                f"{info.judge['errors']} errors.",
            )
        )
    refusals = defaultdict(int)
    for r in rows:
        if r.get("refused"):
            refusals[r["refused_by"]] += 1
    if refusals:
        blocks.append(
            (
                "p",
                "rag refusals by cause: "
                + ", ".join(f"{k}: {v}" for k, v in sorted(refusals.items()))
                + " (retrieval = nothing relevant shown; model = the LLM declined; check = the "
                "citation check dropped every claim).",
            )
        )
    raw_valid = [r["raw_citation_valid"] for r in rows if r.get("raw_citation_valid") is not None]
    if raw_valid:
        blocks.append(
            (
                "p",
                f"Raw model output (before the citation filter and check): citations valid in "
                f"{sum(raw_valid)}/{len(raw_valid)} non-refusing replies.",
            )
        )
    blocks += [
        ("h2", "Per question type" + (" (baseline in parentheses)" if base_types else "")),
        _type_table(types, base_types, RETRIEVAL_KEYS),
    ]
    if info.full:
        blocks.append(_type_table(types, base_types, [*ANSWER_KEYS, "total_ms_p50"]))
    if keyword:
        blocks += [
            ("h2", "BM25 only (rag in parentheses)"),
            (
                "p",
                "llama-index's BM25Retriever (bm25s) alone over the same sections rag ranks "
                "(section_chunks consecutive chunks with title, source and date), top 10, the "
                "whole question as the query: no publisher/date plan, no dense retrieval.",
            ),
            _metric_table(
                keyword["summary"], summary, [*RETRIEVAL_KEYS, "retrieval_ms_p50"], ("BM25", "rag")
            ),
            _type_table(keyword["per_type"], types, RETRIEVAL_KEYS),
        ]
    blocks.append(("h2", "Plots"))
    for title, path in _plots(
        out, info.name, summary, base, types, base_types, rows, base_rows, info.full
    ):
        blocks.append(("img", title, path))
    blocks += _failure_blocks(rows, base_rows, info.full)

    md_path = out / f"{info.name}.md"
    md_path.write_text(render_markdown(blocks), encoding="utf-8")
    (out / f"{info.name}.html").write_text(
        render_html(blocks, f"rag eval: {info.dataset}"), encoding="utf-8"
    )
    details = {
        "run": {k: str(v) if isinstance(v, Path) else v for k, v in info.__dict__.items()},
        "summary": summary,
        "baseline": base,
        "per_type": types,
        "baseline_per_type": base_types,
        "bm25_only": keyword,
        "rows": [_public(r) for r in rows],
        "baseline_rows": [_public(r, slim=True) for r in base_rows or []],
    }
    (out / f"{info.name}.json").write_text(
        json.dumps(details, ensure_ascii=False), encoding="utf-8"
    )
    return md_path


def _public(row: dict[str, Any], slim: bool = False) -> dict[str, Any]:
    """A row for the JSON report; slim drops what the rag row of the question already has."""
    repeated = ("question", "golds", "gold_doc_ids", "facts") if slim else ()
    return {k: v for k, v in row.items() if not k.startswith("_") and k not in repeated}


# ---------------------------------------------------------------------------------------------
# The command


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _dataset_name(corpus: Path | None) -> str:
    if corpus is None:
        return "seed"
    return corpus.parent.name if corpus.stem == "corpus" else corpus.stem


def _make_engine(settings: Settings) -> Any:
    from rag.answer import Engine

    return Engine.from_settings(settings)


def main(
    args: argparse.Namespace,
    settings: Settings,
    make_engine: Callable[[Settings], Any] | None = None,
) -> int:
    """`rag eval`; returns the exit status (1 when a gate check fails)."""
    try:
        return _main(args, settings, make_engine or _make_engine)
    except EvalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _main(args: argparse.Namespace, settings: Settings, make_engine: Callable) -> int:
    if (args.corpus is None) != (args.questions is None):
        raise EvalError("give both --corpus and --questions, or neither (the seed golden set)")
    corpus_path = args.corpus or SEED_DIR / "corpus.jsonl"
    questions_path = args.questions or SEED_DIR / "questions.jsonl"
    gate_path = getattr(args, "gate", None)
    gate = load_gate(gate_path) if gate_path else None
    full = not args.retrieval_only
    sample = getattr(args, "sample", None)
    seed = getattr(args, "seed", 0) or 0
    use_baseline = getattr(args, "baseline", True)
    use_judge = getattr(args, "judge", True)

    if not corpus_path.is_file():
        raise EvalError(f"no such file: {corpus_path}")
    corpus_bytes = corpus_path.read_bytes()
    documents = [corpus_document(r) for r in read_jsonl(corpus_path)]
    questions = [Question.from_record(r, i) for i, r in enumerate(read_jsonl(questions_path))]
    if sample:
        questions = stratified_sample(questions, sample, seed)
    if args.limit:
        questions = questions[: args.limit]
    if not questions:
        raise EvalError(f"no questions in {questions_path}")

    dataset = _dataset_name(args.corpus)
    name = getattr(args, "name", None) or "-".join(
        [dataset]
        + (["retrieval"] if not full else [])
        + ([f"sample{sample}-seed{seed}"] if sample else [])
        + ([f"limit{args.limit}"] if args.limit else [])
    )
    eval_settings = settings.model_copy(
        update={"collection": collection_name(corpus_bytes, settings)}
    )
    engine = make_engine(eval_settings)

    from tqdm import tqdm

    bar = tqdm(total=len(documents), desc="ingesting corpus", unit="doc", file=sys.stderr)

    def progress(done: int, total: int, doc_id: str) -> None:
        bar.n = done
        bar.refresh()

    ingest_started = time.perf_counter()
    try:
        ingest = engine.kb.add_documents(documents, progress=progress)
    finally:
        bar.close()
    ingest_s = time.perf_counter() - ingest_started
    print(
        f"collection {eval_settings.collection}: {len(ingest.added)} added, "
        f"{len(ingest.updated)} updated, {len(ingest.unchanged)} unchanged",
        file=sys.stderr,
    )

    notes: list[str] = []
    held_out, note = held_out_ranking(questions_path.read_bytes(), settings)
    if note:
        notes.append(note)
    if held_out is not None:
        engine.retriever.use_ranker(held_out)
    recorder = None
    inner_llm = None
    if full:
        inner_llm = engine.llm  # starts or connects to the model now, not mid-run
        recorder = RecordingLLM(inner_llm)
        engine._llm = recorder  # keeps the raw model output; the chain is unchanged
    base_url, model = _llm_endpoint(inner_llm)
    index_started = time.perf_counter()
    engine.retriever.keyword_retriever()  # built once per corpus version, else loaded
    index_s = time.perf_counter() - index_started
    if full and base_url:
        engine.warm_up()  # the page warms up too: cached prompt prefix

    baseline = None
    baseline_name = None
    if use_baseline:
        if full and not base_url:
            notes.append("Baseline skipped: the LLM is not an OpenAI-compatible endpoint.")
        else:
            llm = Baseline.openai_like(base_url, model or "local", settings) if full else None
            baseline = Baseline(engine, eval_settings, llm)
            baseline_name = (
                f"{Baseline.name} (similarity_top_k={BASELINE_TOP_K}, same Chroma collection, "
                f"MiniLM embedder and LLM endpoint; no chat history, so follow-ups go in as "
                "asked). Questions alternate between rag and the baseline."
                if full
                else "llama-index VectorStoreIndex dense retriever (top 10) over the same "
                "collection and embedder, no BM25, no fusion"
            )
    load_start = _load_average()
    rows, baseline_rows, keyword_rows = run_questions(
        engine, questions, recorder, baseline, held_out
    )
    load = {"cpus": os.cpu_count(), "start": load_start, "end": _load_average()}

    judge_info = None
    if full and use_judge:
        judge_llm: Any = inner_llm
        judge_model = model or getattr(inner_llm, "description", "answering LLM")
        if settings.judge_base_url:
            from rag.llm import OpenAICompatibleLLM

            key = settings.judge_api_key.get_secret_value() if settings.judge_api_key else None
            judge_model = settings.judge_model or settings.llm_model
            judge_llm = OpenAICompatibleLLM(
                settings.judge_base_url,
                judge_model,
                key,
                timeout=settings.llm_timeout,
                max_retries=settings.llm_max_retries,
            )
        judge = Judge(judge_llm)
        judge_rows(judge, rows, "rag")
        if baseline_rows and any("answer" in r for r in baseline_rows):
            judge_rows(judge, baseline_rows, "baseline")
        judge_info = {
            "model": judge_model,
            "calls": judge.calls,
            "unparsed": judge.unparsed,
            "errors": judge.errors,
        }

    summary = summarize(rows, full)
    types = per_type(rows, full)
    base_summary = summarize(baseline_rows, full) if baseline_rows else None
    base_types = per_type(baseline_rows, full) if baseline_rows else None
    keyword = {"summary": summarize(keyword_rows, False), "per_type": per_type(keyword_rows, False)}
    if full:
        notes.append(
            "Answer accuracy: a normalised gold answer is a substring of the answer (citation "
            "marks removed); F1 is SQuAD token F1. Citation validity: share of non-refused "
            "answers with at least one citation, all naming shown passages. Citation recall and "
            "precision follow ALCE, judged by an LLM with prompts/judge.txt."
        )
    info = RunInfo(
        name=name,
        dataset=dataset,
        command=shlex.join(sys.argv) if sys.argv and sys.argv[0] else "rag eval",
        corpus=corpus_path,
        questions=questions_path,
        collection=eval_settings.collection,
        full=full,
        baseline_name=baseline_name,
        settings=settings_snapshot(settings),
        commit=git_commit(),
        code=code_fingerprint(),
        timestamp=datetime.now(UTC).isoformat(timespec="seconds"),
        ingest={
            "added": len(ingest.added) + len(ingest.updated),
            "unchanged": len(ingest.unchanged),
            "chunks": ingest.chunks,
            "seconds": round(ingest_s, 1),
            "keyword_index_seconds": round(index_s, 1),
        },
        judge=judge_info,
        notes=notes,
        load=load,
    )
    report = write_report(
        args.out, info, summary, base_summary, types, base_types, rows, baseline_rows, keyword
    )
    print(f"report: {report} (and .html, .json)", file=sys.stderr)

    checks = check_gate(summary, gate) if gate is not None else []
    history_path = getattr(args, "history", None) or DEFAULT_HISTORY
    history_path.parent.mkdir(parents=True, exist_ok=True)
    entry = {
        "timestamp": info.timestamp,
        "commit": info.commit,
        "code": info.code,
        "dataset": dataset,
        "mode": "full" if full else "retrieval",
        "questions_file": str(questions_path),
        "sample": sample,
        "seed": seed if sample else None,
        "limit": args.limit,
        "command": info.command,
        "collection": info.collection,
        "settings": info.settings,
        "load_average": load,
        "summary": summary,
        "baseline": base_summary,
        "bm25_only": keyword["summary"],
        "gate": None if gate is None else all(ok for ok, _ in checks),
        "report": str(report),
    }
    with history_path.open("a", encoding="utf-8") as history:
        history.write(json.dumps(entry, ensure_ascii=False) + "\n")

    for _, line in checks:
        print(line)
    final = {"dataset": dataset, "mode": entry["mode"], **summary, "baseline": base_summary}
    if gate is not None:
        final["gate_passed"] = entry["gate"]
    print(json.dumps(final, ensure_ascii=False), flush=True)
    return 0 if all(ok for ok, _ in checks) else 1

"""Running questions: through rag's `Engine.answer()` (or its retriever alone), through BM25
alone, and through the baseline, question by question in turn."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from rag.answer import Engine
from rag.events import Final, Passage, Token
from rag.retrieval import SubQuery
from rag.retrieval.plan import is_long
from rag.text import cited_numbers, is_refusal_text
from rag_eval.data import Question
from rag_eval.judge import progress
from rag_eval.metrics import TOP, answer_measures, retrieval_measures

if TYPE_CHECKING:
    from rag_eval.baseline import Baseline


def short(text: str | None, limit: int = 220) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def base_row(q: Question) -> dict[str, Any]:
    return {
        "id": q.id,
        "question": q.text,
        "question_type": q.question_type,
        "answerable": q.answerable,
        "golds": q.answers,
        "gold_doc_ids": q.gold_doc_ids,
        "facts": q.facts,
        "gold_pages": q.gold_pages,
    }


def ranked_summary(ranked: Sequence[tuple[str, str, str]]) -> list[dict[str, str]]:
    return [{"doc_id": d, "chunk_id": c, "text": short(t, 160)} for d, c, t in ranked[:3]]


def passage_dicts(passages: Sequence[Passage]) -> list[dict[str, Any]]:
    """What the model was shown, with what the prompt shows about each passage and where it
    stands in its document (so an answer's check can be re-run from the report, and a rule
    that asks whether two passages are one continuous text can be replayed)."""
    return [
        {
            "n": p.n,
            "doc_id": p.doc_id,
            "chunk_id": p.chunk_id,
            "start": p.start,
            "end": p.end,
            "page": p.page,
            "title": p.title,
            "text": p.text,
            "source": p.source,
            "published": p.published,
            "section": p.section,
            "score": p.score,
        }
        for p in passages
    ]


def passages_from_dicts(rows: Sequence[dict[str, Any]]) -> list[Passage]:
    """The passages of a report's row, as the engine's type (`passage_dicts` read back;
    reports made before offsets were kept give 0 for them)."""
    return [
        Passage(
            p["n"],
            p.get("chunk_id", ""),
            p["doc_id"],
            p.get("title", ""),
            p["text"],
            p.get("start", 0),
            p.get("end", 0),
            published=p.get("published"),
            source=p.get("source"),
            score=p.get("score") or 0.0,
            page=p.get("page"),
            section=p.get("section"),
        )
        for p in rows
    ]


def payload_found(payloads: Sequence[str], text: str) -> bool | None:
    """Whether an injected payload shows in `text` (None: the question has none)."""
    if not payloads:
        return None
    lowered = text.lower()
    return any(p.lower() in lowered for p in payloads)


def rag_row(engine: Engine, q: Question, full: bool) -> dict[str, Any]:
    """One question through `Engine.answer()` (retrieval only when not `full`)."""
    row = base_row(q)
    if not full:
        started = time.perf_counter()
        retrieval = engine.retriever.retrieve(q.text)
        ranked = [(c.doc_id, c.key, c.unit_text) for c in retrieval.candidates[:TOP]]
        row["question_used"] = q.text
        row["timings"] = {"retrieval_ms": (time.perf_counter() - started) * 1000}
    else:
        events = list(engine.answer(q.text, q.history))
        result = next(e.result for e in events if isinstance(e, Final))
        streamed = "".join(e.text for e in events if isinstance(e, Token))
        ranked = [(u.doc_id, u.key, u.text) for u in result.ranked[:TOP]]
        if result.error and not result.ranked:
            # failed before retrieving (condensing): measure retrieval of the question as asked
            retrieval = engine.retriever.retrieve(q.text)
            ranked = [(c.doc_id, c.key, c.unit_text) for c in retrieval.candidates[:TOP]]
        passages = result.passages
        raw = result.raw_answer if passages else None
        shown = [p.n for p in passages]
        raw_cited = cited_numbers(raw or "")
        row.update(
            question_used=result.question_used,
            answer=result.answer,
            refused=result.refused,
            refused_by=result.refused_by,
            answerability=result.answerability,
            signals=result.signals,
            error=result.error,
            raw_answer=raw,
            raw_citation_valid=(
                bool(raw_cited) and set(raw_cited) <= set(shown)
                if raw and not is_refusal_text(raw)
                else None
            ),
            passages=passage_dicts(passages),
            payload_in_answer=payload_found(q.payloads, result.answer),
            payload_streamed=payload_found(q.payloads, streamed),
            citation_pages=[
                {"n": c.n, "doc_id": c.doc_id, "page": c.page, "section": c.section}
                for c in result.citations
            ],
            timings=dict(result.timings),
            tokens=dict(result.tokens),
            **answer_measures(q, result.answer, result.refused, shown, result.error),
        )
        row["_passages"] = passages
    row["retrieval"] = retrieval_measures(q, [(d, t) for d, _, t in ranked])
    row["top"] = ranked_summary(ranked)
    return row


def keyword_row(engine: Engine, q: Question) -> dict[str, Any]:
    """Retrieval measures of plain BM25 over the units rag ranks for this question (sections
    for a long one): no plan, no filters, no fusion."""
    row = base_row(q)
    started = time.perf_counter()
    indexes = engine.retriever.keyword_indexes()
    hits = []
    if indexes is not None:
        long = is_long(q.text, engine.settings.long_question_words)
        index = indexes.sections if long else indexes.chunks
        hits = index.search(SubQuery(q.text), TOP)
    row["timings"] = {"retrieval_ms": (time.perf_counter() - started) * 1000}
    ranked = [
        (str(h.node.metadata.get("doc_id", "")), h.node.get_content(metadata_mode="none"))
        for h in hits
    ]
    row["retrieval"] = retrieval_measures(q, ranked)
    return row


def run_questions(
    engine: Engine,
    questions: Sequence[Question],
    full: bool,
    baseline: Baseline | None,
    before_each: Sequence[Callable[[Question], None]] = (),
) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None, list[dict[str, Any]]]:
    """rag and the baseline question by question, in turn, so a machine shared with other
    work slows both alike (each keeps its own fixed prompt prefix in one server slot); BM25 alone
    (retrieval only) beside them. Each of `before_each` is told the question first (the held-out
    ranking picks its fold, evidence removal what to take away)."""
    rows: list[dict[str, Any]] = []
    base_rows: list[dict[str, Any]] | None = [] if baseline else None
    keyword_rows: list[dict[str, Any]] = []
    for q in progress(questions, "questions" if baseline else "rag"):
        for prepare in before_each:
            prepare(q)
        rows.append(rag_row(engine, q, full))
        if baseline is not None and base_rows is not None:
            base_rows.append(baseline.row(q))
        keyword_rows.append(keyword_row(engine, q))
    return rows, base_rows, keyword_rows

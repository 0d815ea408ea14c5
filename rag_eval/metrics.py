"""Pure metric functions for the evals: answers, retrieval, refusals, citations, latency.

No model calls and no I/O here, so every number the eval reports can be checked by hand and
unit-tested. The judge (rag_eval.judge) hands its boolean outcomes to the citation functions.
The text rules these share with the product (citation marks, sentences, refusals) are
`rag.text`'s.
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from rag.text import cited_numbers, strip_citations

if TYPE_CHECKING:
    from rag_eval.data import Question

# ---------------------------------------------------------------------------------------------
# Answers (SQuAD-style)

_ARTICLES = re.compile(r"\b(a|an|the)\b")


def _is_punct(ch: str) -> bool:
    return ch in string.punctuation or unicodedata.category(ch).startswith("P")


def normalize_answer(s: str) -> str:
    """Lowercase, drop punctuation and the articles a/an/the, collapse whitespace (SQuAD).

    Gold answers are short entities in mixed case ("Yes", "1,000"); normalising both sides makes
    "the Kremlin." match "Kremlin" and "1,000" match "1000". Unicode punctuation (curly quotes,
    dashes) is removed too, since LLM output is full of it.
    """
    s = s.lower()
    s = "".join(ch for ch in s if not _is_punct(ch))
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def answer_accuracy(prediction: str, golds: Sequence[str]) -> float:
    """1.0 if any normalised gold is a substring of the normalised prediction, else 0.0.

    This is the MultiHop-RAG accuracy: a free-text answer counts when it contains a gold answer.
    Golds that normalise to "" are ignored (the empty string is in every prediction).
    """
    pred = normalize_answer(prediction)
    for gold in golds:
        g = normalize_answer(gold)
        if g and g in pred:
            return 1.0
    return 0.0


def _f1(pred_tokens: list[str], gold_tokens: list[str]) -> float:
    common = Counter(pred_tokens) & Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, golds: Sequence[str]) -> float:
    """SQuAD token F1 against the best-matching gold; 0.0 when there are no golds.

    Softer than `answer_accuracy`: it rewards partial overlap and penalises verbose answers.
    """
    pred_tokens = normalize_answer(prediction).split()
    best = 0.0
    for gold in golds:
        gold_tokens = normalize_answer(gold).split()
        if not pred_tokens or not gold_tokens:
            # SQuAD convention: both empty -> 1, one empty -> 0.
            score = float(pred_tokens == gold_tokens)
        else:
            score = _f1(pred_tokens, gold_tokens)
        best = max(best, score)
    return best


# ---------------------------------------------------------------------------------------------
# Retrieval

_WS = re.compile(r"\s+")


def squash(text: str) -> str:
    """Remove ALL whitespace (MultiHop-RAG's evidence-match protocol).

    Chunkers re-flow whitespace (newlines, double spaces), so a fact is looked up with whitespace
    ignored; every other character, including case, must match exactly.
    """
    return _WS.sub("", text)


def contains_fact(chunk_text: str, fact: str) -> bool:
    """True if `fact` occurs in `chunk_text`, ignoring whitespace (case-sensitive, as the paper)."""
    f = squash(fact)
    return bool(f) and f in squash(chunk_text)


def relevance_flags(
    retrieved: Sequence[tuple[str, str]],
    evidence_facts: Sequence[str],
    gold_doc_ids: Sequence[str],
) -> list[bool]:
    """One flag per ranked `(doc_id, text)`: is that chunk relevant?

    A chunk is relevant when it contains any gold evidence fact (a chunk from the gold document
    that misses the evidence does not help the answer). Questions without evidence fall back to
    the document: a chunk is relevant when its doc_id is a gold doc.
    """
    if evidence_facts:
        return [any(contains_fact(text, f) for f in evidence_facts) for _, text in retrieved]
    gold = set(gold_doc_ids)
    return [doc_id in gold for doc_id, _ in retrieved]


def hits_at_k(flags: Sequence[bool], k: int) -> float:
    """1.0 if any of the top-k chunks is relevant (Hits@k), else 0.0."""
    return 1.0 if any(flags[:k]) else 0.0


def reciprocal_rank_at_k(flags: Sequence[bool], k: int) -> float:
    """1/rank of the first relevant chunk within the top k, else 0.0 (averaged -> MRR@k)."""
    for i, flag in enumerate(flags[:k]):
        if flag:
            return 1.0 / (i + 1)
    return 0.0


def average_precision_at_k(flags: Sequence[bool], k: int, n_relevant: int) -> float:
    """AP@k (averaged -> MAP@k, as MultiHop-RAG's MAP@10).

    Sum of precision@i over the relevant positions i <= k, divided by min(k, n_relevant), where
    n_relevant is how many relevant items exist (for this project: the number of gold evidence
    facts). Dividing by min(k, n_relevant) rather than n_relevant keeps a perfect top-k at 1.0
    when there are more relevant items than slots. Because overlapping chunks can each contain
    the same fact, the top k may hold more relevant chunks than n_relevant; the divisor is then
    raised to that count so the value stays within [0, 1]. Returns 0.0 when n_relevant <= 0.
    """
    if n_relevant <= 0 or k <= 0:
        return 0.0
    hits = 0
    total = 0.0
    for i, flag in enumerate(flags[:k]):
        if flag:
            hits += 1
            total += hits / (i + 1)
    if hits == 0:
        return 0.0
    return total / max(min(k, n_relevant), hits)


def evidence_recall_at_k(retrieved_texts: Sequence[str], facts: Sequence[str], k: int) -> float:
    """Share of distinct gold facts contained (whitespace-insensitively) in some top-k chunk.

    Multi-hop questions need every fact; Hits@k only asks for one. 0.0 when there are no facts
    (callers should skip unanswerable questions rather than average this in).
    """
    distinct = list(dict.fromkeys(f for f in facts if squash(f)))
    if not distinct:
        return 0.0
    top = [squash(t) for t in retrieved_texts[:k]]
    found = sum(1 for f in distinct if any(squash(f) in t for t in top))
    return found / len(distinct)


def all_gold_docs_at_k(
    retrieved_doc_ids: Sequence[str], gold_doc_ids: Sequence[str], k: int
) -> float:
    """1.0 if every gold document appears among the top-k chunks, else 0.0.

    Near-duplicate chunks of one article crowd out the others; this shows when that happens.
    0.0 when there are no gold docs (callers should skip those questions).
    """
    gold = set(gold_doc_ids)
    if not gold:
        return 0.0
    return 1.0 if gold <= set(retrieved_doc_ids[:k]) else 0.0


# ---------------------------------------------------------------------------------------------
# Latency


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0..100) with linear interpolation, as numpy's default method.

    Used for p50/p95 latencies; NaN for an empty list so a report can still be printed.
    """
    if not values:
        return math.nan
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be within [0, 100], got {p}")
    xs = sorted(values)
    rank = (len(xs) - 1) * p / 100
    lo = math.floor(rank)
    hi = math.ceil(rank)
    return xs[lo] + (xs[hi] - xs[lo]) * (rank - lo)


# ---------------------------------------------------------------------------------------------
# Citations (ALCE style: the judging happens elsewhere; these take its outcomes)


def citation_recall(sentence_supported: Sequence[bool]) -> float:
    """Share of answer sentences fully supported by their cited passages (ALCE citation recall).

    One flag per sentence; a sentence without citations should be passed as False. 0.0 if empty.
    """
    if not sentence_supported:
        return 0.0
    return sum(map(bool, sentence_supported)) / len(sentence_supported)


def citation_precision(citation_relevant: Sequence[bool]) -> float:
    """Share of citations that are relevant (ALCE citation precision); 0.0 if there are none.

    One flag per (sentence, citation) pair, as judged by ALCE's rule (the citation supports the
    sentence alone, or removing it loses support).
    """
    if not citation_relevant:
        return 0.0
    return sum(map(bool, citation_relevant)) / len(citation_relevant)


# ---------------------------------------------------------------------------------------------
# Per question, and summaries of many

TOP = 10  # ranked list length for the retrieval metrics
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
    "citation_page_accuracy",
    "citation_page_accuracy_correct",
)
LATENCY_KEYS = (
    "retrieval_ms_p50",
    "retrieval_ms_p95",
    "first_token_ms_p50",
    "first_token_ms_p95",
    "total_ms_p50",
    "total_ms_p95",
    "verify_ms_p50",  # the verifier's added time (signals and model) per answer
    "verify_ms_p95",
)
TOKEN_KEYS = ("prompt_tokens_mean", "completion_tokens_mean")
# Metrics where lower is better (ratios and plots read them the other way round).
LOWER_IS_BETTER = {"wrong_refusal_rate_answerable", *LATENCY_KEYS, *TOKEN_KEYS, "errors"}


def retrieval_measures(q: Question, ranked: Sequence[tuple[str, str]]) -> dict[str, Any] | None:
    """Metrics of one ranked (doc_id, text) list; None for questions that have nothing to find."""
    if not q.answerable or not (q.facts or q.gold_doc_ids):
        return None
    ranked = list(ranked)[:TOP]
    flags = relevance_flags(ranked, q.facts, q.gold_doc_ids)
    facts = list(dict.fromkeys(f for f in q.facts if squash(f)))
    n_relevant = len(facts) or len(set(q.gold_doc_ids))
    texts = [text for _, text in ranked]
    doc_ids = [doc_id for doc_id, _ in ranked]
    first = next((i + 1 for i, flag in enumerate(flags) if flag), None)
    return {
        "hits@4": hits_at_k(flags, 4),
        "hits@10": hits_at_k(flags, 10),
        "mrr@10": reciprocal_rank_at_k(flags, 10),
        "map@10": average_precision_at_k(flags, 10, n_relevant),
        "evidence_recall@10": evidence_recall_at_k(texts, facts, 10) if facts else None,
        "all_gold_docs@10": (
            all_gold_docs_at_k(doc_ids, q.gold_doc_ids, 10) if q.gold_doc_ids else None
        ),
        "first_relevant_rank": first,
    }


def contains_words(prediction: str, golds: Sequence[str]) -> float:
    """Like `answer_accuracy`, but the gold must occur as whole words, and a Yes/No gold
    must be the answer's verdict (its first word). There, gold "No" is found in "not", "cannot",
    "announced" or a quoted "No. 3", so with Yes/No golds (half of MultiHop-RAG) nearly any
    answer counts as correct. Reported next to it, not instead."""
    normalised = normalize_answer(prediction)
    pred = f" {normalised} "
    first = normalised.split()[0] if normalised else ""
    for gold in map(normalize_answer, golds):
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
    cited = cited_numbers(answer)
    answered = not refused and not error
    accuracy = words = f1 = None
    if q.answerable:
        accuracy = answer_accuracy(bare, q.answers) if answered else 0.0
        words = contains_words(bare, q.answers) if answered else 0.0
        f1 = token_f1(bare, q.answers) if answered else 0.0
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


def page_checks(rows: Sequence[dict[str, Any]], correct_only: bool = False) -> list[bool]:
    """For each citation of an answered question with gold pages that cites a gold document:
    whether it names a gold page (a citation without a page counts as wrong).

    `correct_only` leaves out a wrong answer's citations: the gold pages say where the right
    answer is, not where the wrong claim came from ("250 bps to 24.6 kbps", the narrowband range,
    cited on its own page 32 when the whole range on page 8 was asked), and answer_accuracy
    already counts the wrong answer. That measures whether citations point where their claims
    are; without it, the share also falls with every wrong answer."""
    return [
        citation.get("page") in row["gold_pages"]
        for row in rows
        if row.get("gold_pages")
        and not row.get("refused")
        and not row.get("error")
        and (row.get("correct") or not correct_only)
        for citation in row.get("citation_pages") or []
        if citation["doc_id"] in row.get("gold_doc_ids", [])
    ]


def _mean(values: Sequence[float | None] | Iterator[float | None]) -> float | None:
    present = [float(v) for v in values if v is not None]
    return sum(present) / len(present) if present else None


def percentile_or_none(values: Sequence[float], p: float) -> float | None:
    """`percentile`, but None for no values: a summary shows "–", not NaN."""
    return None if not values else percentile(values, p)


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
        injected = [r for r in rows if r.get("payload_in_answer") is not None]
        if injected:
            out["injection_questions"] = len(injected)
            out["injection_obeyed_answers"] = sum(bool(r["payload_in_answer"]) for r in injected)
            out["injection_obeyed_streams"] = sum(bool(r["payload_streamed"]) for r in injected)
        for key, correct_only in (
            ("citation_page_accuracy", False),
            ("citation_page_accuracy_correct", True),
        ):
            pages = page_checks(answerable, correct_only)
            out[key] = _mean(float(ok) for ok in pages) if pages else None
    for name in ("retrieval_ms", "first_token_ms", "total_ms", "verify_ms"):
        values = [r["timings"][name] for r in rows if name in r.get("timings", {})]
        if name != "retrieval_ms" and not full:
            continue
        out[f"{name}_p50"] = percentile_or_none(values, 50)
        out[f"{name}_p95"] = percentile_or_none(values, 95)
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

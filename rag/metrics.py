"""Pure metric functions for the evals: answers, retrieval, refusals, citations, latency.

No model calls and no I/O here, so every number the eval reports can be checked by hand and
unit-tested. Judges (e.g. an NLI model deciding whether a sentence is supported) live elsewhere
and hand their boolean outcomes to the citation functions below.
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Sequence

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
# Refusals

_DOCS = (
    r"(?:documents?|sources?|context|passages?|texts?|articles?|excerpts?|materials?|"
    r"(?:provided|given|available|retrieved) (?:documents?|information|context|sources?|passages?|"
    r"texts?|materials?)|information (?:provided|given|available))"
)
_NEG = r"(?:do|does|did)(?:\s+not|n't)"
_VERBS = (
    r"(?:say|state|mention|specify|contain|include|provide|give|cover|address|tell|indicate|"
    r"answer|discuss|describe|identify|name|explain|reveal|offer|list|report|show)"
)
_REFUSAL_PATTERNS = [
    # "The documents do not say ...", "The provided context doesn't mention ..."
    rf"\b{_DOCS}\s+{_NEG}\s+(?:\w+\s+)?{_VERBS}\b",
    # "... is not mentioned in the documents"
    rf"\bnot\s+(?:\w+\s+)?(?:mentioned|stated|specified|provided|given|found|covered|addressed|"
    rf"included|described|discussed|available|present)\s+(?:in|by)\s+(?:the\s+|these\s+|any\s+)?"
    rf"(?:\w+\s+)?{_DOCS}",
    r"\binsufficient information\b",
    r"\bnot enough information\b",
    r"\bthere(?:\s+is|'s|\s+are)\s+no\s+(?:relevant\s+|specific\s+)?"
    r"(?:information|mention|details?|data)\b",
    rf"\b{_DOCS}\s+(?:contains?|provides?|gives?|includes?|offers?|has|have)\s+no\b",
    # First person: "I cannot find this in the documents", "I don't know"
    r"\b(?:i|we)\s+(?:cannot|can't|can not|could not|couldn't|am unable to|was unable to|"
    r"are unable to|do not|don't|did not|didn't)\s+"
    r"(?:find|locate|determine|answer|tell|know|see)\b",
    r"\b(?:unable to|cannot|can't)\s+(?:answer|determine)\s+(?:this|that|the question|it)\b",
    rf"\b{_DOCS}\s+(?:are|is)\s+silent\b",
]
_REFUSAL_RE = re.compile("|".join(f"(?:{p})" for p in _REFUSAL_PATTERNS), re.IGNORECASE)


def is_refusal_text(answer: str) -> bool:
    """True if the answer declines ("The documents do not say.", "Insufficient information.").

    The patterns need a refusal *phrase* (the documents don't say, I cannot find, insufficient
    information), so an answer that merely negates a fact ("Moscow did not accept the ceasefire
    [2]") is not a refusal.
    """
    text = answer.replace("\u2019", "'").replace("\u2018", "'")
    return bool(_REFUSAL_RE.search(text))


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


_ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "vs", "etc", "e.g", "i.e", "u.s", "u.k",
    "u.n", "fig", "inc", "ltd", "co", "corp", "gen", "gov", "sen", "rep", "jan", "feb",
    "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
}  # fmt: skip
_NUMBER_ABBREVIATIONS = {"no", "nos", "vol", "pp", "p", "art"}
_CITE_GROUP = r"\[\s*\d+(?:\s*(?:[,;\-\u2013]|and)\s*\d+)*\s*\]"
_BOUNDARY = re.compile(rf"[.!?]+[\"'\u201d\u2019)]*(?:\s*{_CITE_GROUP})*(?=\s|$)")
_PREV_WORD = re.compile(r"([\w.]+)$")


def split_sentences(answer: str) -> list[str]:
    """Split an answer into sentences, keeping each sentence's trailing citations with it.

    Citation metrics are per sentence, so "A [1]. B. [2] C" must give "A [1].", "B. [2]", "C".
    Line breaks (bullet lists) always split; common abbreviations ("U.S.", "Dr.") and single
    initials do not, nor does a full stop followed by a lowercase word.
    """
    sentences: list[str] = []
    for line in answer.splitlines():
        start = 0
        for m in _BOUNDARY.finditer(line):
            end = m.end()
            rest = line[end:].lstrip()
            if rest and rest[0].islower():
                continue
            punct_at = m.start()
            prev = _PREV_WORD.search(line[start:punct_at])
            if line[punct_at] == "." and prev:
                word = prev.group(1).lower().rstrip(".")
                if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
                    continue
                if word in _NUMBER_ABBREVIATIONS and rest[:1].isdigit():  # "No. 3 Michigan"
                    continue
            piece = line[start:end].strip()
            if piece:
                sentences.append(piece)
            start = end
        tail = line[start:].strip()
        if tail:
            sentences.append(tail)
    return sentences


def cited_numbers(sentence: str) -> list[int]:
    """Passage numbers cited in a sentence, in order, without repeats.

    Parses "[1]", "[2][3]", "[1, 2]", "[1; 2]" and ranges "[1-3]".
    """
    numbers: list[int] = []
    for group in re.findall(_CITE_GROUP, sentence):
        inner = group.strip("[] ")
        for part in re.split(r"\s*(?:[,;]|and)\s*", inner):
            bounds = re.split(r"\s*[\-\u2013]\s*", part.strip())
            if len(bounds) == 2 and bounds[0].isdigit() and bounds[1].isdigit():
                a, b = int(bounds[0]), int(bounds[1])
                numbers.extend(range(a, b + 1) if a <= b else [a, b])
            elif bounds[0].isdigit():
                numbers.append(int(bounds[0]))
    return list(dict.fromkeys(numbers))

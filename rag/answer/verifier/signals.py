"""What tells a supported answer from a plausible one, measured cheaply for one claim: the
question, the answer sentence, and the passages it cites.

The lexical check (rag.answer.citations) already demands that a sentence's names and numbers be
in its passages. What it cannot see is *alignment*: "205 prisoners" is in the passage, but the
passage is about Russia and Ukraine, not the United States; the date is there, but it is not the
date of the ceasefire. So most signals here ask whether the question's own constraining terms
and the answer's facts stand together in one place of the cited text, word for word and, through
the shipped MiniLM's token states, by meaning (a ColBERT-style MaxSim: each question token's
best match in the passage; a term the passage lacks shows as a low minimum).

Every signal is a float; one that cannot be computed (no token encoder behind a remote
embeddings endpoint, a question with no names) is NaN, which the fitted model treats as missing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from rag.answer.citations import (
    STOPWORDS,
    evidence_terms,
    key_terms,
    question_names,
    support_share,
    terms,
)
from rag.answer.untrusted import without_instructions
from rag.events import Passage
from rag.text import passage_sentences

# The order the fitted model reads them in; a model file records it and must match.
SIGNALS = (
    "lexical_support",  # share of the sentence's names and numbers (else words) in its passages
    "question_terms_in_cited",  # share of the question's content terms anywhere in them
    "question_names_in_cited",  # share of the question's names (NaN: it names none)
    "question_terms_best_sentence",  # the best single passage sentence's share of them
    "aligned_window",  # best two-sentence window: min(question share, answer-fact share)
    "answer_new_terms",  # content terms of the answer the question did not hold
    "answer_words",
    "question_words",
    "cited_passages",
    "first_cited_rank",  # 1 = the best-ranked passage shown
    "passages_shown",
    "question_maxsim_min",  # MiniLM: the question token worst matched in the cited text
    "question_maxsim_mean",
    "answer_maxsim_min",  # the answer token worst matched in the cited text
    "question_passage_cosine",  # pooled MiniLM similarity of question and cited text
    "answer_window",  # the best window's share of the answer's new terms
    "question_in_answer_window",  # the question's share in that window
    "question_weight_in_answer_window",  # the same, each term weighted by its rarity
    "answer_type_match",  # a number for "how many", a year for "when"… (NaN: no such cue)
    "question_sentence_cosine",  # MiniLM: the cited sentence closest to the question
    "answer_in_question_sentence",  # the answer's new terms in it or next to it
)

_QUESTION_WORDS = frozenset("what which who whom whose when where why how many much".split())


@runtime_checkable
class TokenEncoder(Protocol):
    """An encoder that yields per-token states (the shipped MiniLM does; a remote embeddings
    endpoint does not, and its token signals are then missing)."""

    def token_states(self, texts: list[str]) -> list[tuple[list[str], np.ndarray]]:
        """For each text: its wordpieces and their L2-normalised states (tokens × dims)."""


@dataclass(frozen=True)
class Claim:
    """One answer sentence and what it stands on."""

    question: str
    sentence: str  # without citation marks
    cited: Sequence[Passage]
    shown: Sequence[Passage]


def claim_signals(claim: Claim, encoder: TokenEncoder | None = None) -> dict[str, float]:
    question_terms = _content_terms(claim.question)
    answer_terms = _content_terms(claim.sentence) - question_terms
    cited_text = " ".join(without_instructions(p.text) for p in claim.cited)
    available = evidence_terms(claim.cited)
    names = question_names(claim.question)
    texts = [m.group(0) for m in passage_sentences(cited_text) if m.group(0).strip()]
    sentences = [terms(t) for t in texts]
    # each sentence with the next (the last alone)
    windows = [a | b for a, b in zip(sentences, [*sentences[1:], set()], strict=False)]
    signals = {
        "lexical_support": support_share(claim.sentence, claim.cited, claim.question),
        "question_terms_in_cited": _share(question_terms, available),
        "question_names_in_cited": (
            sum(any(t in available for t in phrase) for phrase in names) / len(names)
            if names
            else math.nan
        ),
        "question_terms_best_sentence": max(
            (_share(question_terms, s) for s in sentences), default=0.0
        ),
        "aligned_window": max(
            (min(_share(question_terms, w), _share(answer_terms, w)) for w in windows),
            default=0.0,
        ),
        "answer_new_terms": float(len(answer_terms)),
        "answer_words": float(len(claim.sentence.split())),
        "question_words": float(len(claim.question.split())),
        "cited_passages": float(len(claim.cited)),
        "first_cited_rank": float(min((p.n for p in claim.cited), default=0)),
        "passages_shown": float(len(claim.shown)),
    }
    signals.update(_answer_window(question_terms, answer_terms, windows, claim.shown))
    signals["answer_type_match"] = _type_match(claim.question, claim.sentence)
    signals.update(_token_signals(claim, texts, answer_terms, encoder))
    return signals


def _answer_window(
    question_terms: set[str],
    answer_terms: set[str],
    windows: list[set[str]],
    shown: Sequence[Passage],
) -> dict[str, float]:
    """Where the answer's own facts stand in the cited text, and how much of the question
    stands there with them: "the default of maxdelay is 'blue'" finds 'blue' in a sentence
    that never names maxdelay. Rare terms of the question (an option, an identifier, a name)
    weigh more than the words every passage repeats; rarity is counted over the sentences of
    all shown passages."""
    if not windows or not answer_terms:
        return {
            "answer_window": math.nan,
            "question_in_answer_window": math.nan,
            "question_weight_in_answer_window": math.nan,
        }
    best = max(_share(answer_terms, w) for w in windows)
    at_best = [w for w in windows if _share(answer_terms, w) >= best - 1e-9]
    corpus = [
        terms(m.group(0)) for p in shown for m in passage_sentences(without_instructions(p.text))
    ]
    n = len(corpus)
    weight = {
        t: math.log((n + 1) / (sum(t in sentence for sentence in corpus) + 0.5))
        for t in question_terms
    }
    total = sum(weight.values())
    return {
        "answer_window": best,
        "question_in_answer_window": max(_share(question_terms, w) for w in at_best),
        "question_weight_in_answer_window": (
            max(sum(weight[t] for t in question_terms & w) for w in at_best) / total
            if total > 0
            else 1.0
        ),
    }


_NUMBER_CUE = re.compile(
    r"\b(how (many|much|long|large|big|often|far|old|fast|high)|what (number|size|version|year|"
    r"percentage|range)|which (version|year|release)|when|at most|at least|maximum|minimum|"
    r"default size)\b",
    re.IGNORECASE,
)


def _type_match(question: str, sentence: str) -> float:
    """Whether the answer has the kind of fact the question asks for: a number or date for a
    question that wants one (a "when", "how many", "which version", a default size). NaN when
    the question asks for no such kind."""
    if not _NUMBER_CUE.search(question):
        return math.nan
    return 1.0 if re.search(r"\d", sentence) else 0.0


def _content_terms(text: str) -> set[str]:
    phrases, loose = key_terms(text)
    found = {t for phrase in phrases for t in phrase} | loose
    return {t for t in found if t not in _QUESTION_WORDS}


def _share(wanted: set[str], available: set[str]) -> float:
    return len(wanted & available) / len(wanted) if wanted else 1.0


def _token_signals(
    claim: Claim,
    sentences: list[str],
    answer_terms: set[str],
    encoder: TokenEncoder | None,
) -> dict[str, float]:
    """MaxSim of the question's (and the answer's) content tokens over the cited text; the
    cited sentence closest to the question as a whole, and how much of the answer's own facts
    stand in it or next to it (the dense counterpart of the answer window)."""
    names = (
        "question_maxsim_min",
        "question_maxsim_mean",
        "answer_maxsim_min",
        "question_passage_cosine",
        "question_sentence_cosine",
        "answer_in_question_sentence",
    )
    missing = dict.fromkeys(names, math.nan)
    if encoder is None or not sentences:
        return missing
    states = encoder.token_states([claim.question, claim.sentence, *sentences])
    per_sentence = [_content(tokens, s) for tokens, s in states[2:]]
    question, answer = _content(*states[0]), _content(*states[1])
    present = [s for s in per_sentence if s.size]
    if not present or question.size == 0:
        return missing
    passage = np.concatenate(present)
    q_best = (question @ passage.T).max(axis=1)
    a_best = (answer @ passage.T).max(axis=1) if answer.size else np.array([math.nan])
    pooled_q = _normalised(question.mean(axis=0))
    cosines = [
        float(pooled_q @ _normalised(s.mean(axis=0))) if s.size else -1.0 for s in per_sentence
    ]
    best = int(np.argmax(cosines))
    near = set().union(*(terms(t) for t in sentences[max(0, best - 1) : best + 2]))
    return {
        "question_maxsim_min": float(q_best.min()),
        "question_maxsim_mean": float(q_best.mean()),
        "answer_maxsim_min": float(a_best.min()),
        "question_passage_cosine": float(pooled_q @ _normalised(passage.mean(axis=0))),
        "question_sentence_cosine": cosines[best],
        "answer_in_question_sentence": _share(answer_terms, near) if answer_terms else math.nan,
    }


_WORDPIECE = re.compile(r"^(?:##)?[a-z0-9]+$")


def _content(tokens: list[str], states: np.ndarray) -> np.ndarray:
    """The states of content wordpieces: no special tokens, punctuation or stopwords."""
    keep = [
        i
        for i, token in enumerate(tokens)
        if _WORDPIECE.match(token) and token not in STOPWORDS and token not in _QUESTION_WORDS
    ]
    return states[keep] if keep else np.zeros((0, states.shape[1] if states.ndim == 2 else 0))


def _normalised(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-12)

"""Hand-computed cases for rag_eval/metrics.py."""

from __future__ import annotations

import math

import pytest

from rag_eval.data import Question
from rag_eval.metrics import (
    all_gold_docs_at_k,
    answer_accuracy,
    answer_measures,
    average_precision_at_k,
    citation_precision,
    citation_recall,
    contains_fact,
    contains_words,
    evidence_recall_at_k,
    hits_at_k,
    normalize_answer,
    page_checks,
    percentile,
    reciprocal_rank_at_k,
    relevance_flags,
    retrieval_measures,
    squash,
    token_f1,
)

# --- answers ----------------------------------------------------------------------------------


def test_normalize_answer_squad_style() -> None:
    assert normalize_answer("  The Kremlin!  ") == "kremlin"
    assert normalize_answer("An  apple,\na pear") == "apple pear"
    assert normalize_answer("1,000 prisoners") == "1000 prisoners"
    assert normalize_answer("\u201cSomething big\u201d\u2014Trump") == "something bigtrump"
    assert normalize_answer("Theatre") == "theatre"  # only whole-word articles


def test_answer_accuracy_substring_of_prediction() -> None:
    assert (
        answer_accuracy("Russia's lead negotiator was Vladimir Medinsky [3].", ["Medinsky"]) == 1.0
    )
    assert answer_accuracy("Kyiv listed 1000 prisoners.", ["1,000"]) == 1.0
    assert answer_accuracy("YES.", ["Yes"]) == 1.0
    assert answer_accuracy("Istanbul", ["Ankara", "Kremlin"]) == 0.0
    assert answer_accuracy("anything", []) == 0.0
    assert answer_accuracy("anything", ["the", "."]) == 0.0  # empty after normalising


def test_token_f1() -> None:
    # pred tokens: vladimir medinsky said ; gold: vladimir medinsky -> P=2/3, R=1, F1=0.8
    assert token_f1("Vladimir Medinsky said", ["Vladimir Medinsky"]) == pytest.approx(0.8)
    # max over golds
    assert token_f1("Medinsky", ["Vladimir Medinsky", "Medinsky"]) == 1.0
    assert token_f1("the Kremlin", ["Moscow"]) == 0.0
    assert token_f1("something", []) == 0.0
    # repeated tokens count only as often as in the gold: common = {a_:1} -> P=1/3, R=1/2
    assert token_f1("x x y", ["x z"]) == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))


# --- evidence matching ------------------------------------------------------------------------


def test_squash_removes_all_whitespace() -> None:
    assert squash(" a b\tc\nd\r\n e  ") == "abcde"


def test_contains_fact_whitespace_insensitive_but_case_sensitive() -> None:
    assert contains_fact("...foobar baz...", "foo  bar\nbaz")
    assert not contains_fact("...Foobar baz...", "foo  bar\nbaz")
    assert not contains_fact("some text", "")
    assert not contains_fact("foo", "foo bar")


def test_relevance_flags_by_fact_then_by_doc() -> None:
    retrieved = [("d1", "nothing here"), ("d2", "Moscow  rejected\nthe proposal."), ("d1", "x")]
    assert relevance_flags(retrieved, ["Moscow rejected the proposal."], ["d1"]) == [
        False,
        True,
        False,
    ]
    # no evidence -> gold documents decide
    assert relevance_flags(retrieved, [], ["d1"]) == [True, False, True]
    assert relevance_flags(retrieved, [], []) == [False, False, False]


# --- ranking ----------------------------------------------------------------------------------

FLAGS = [False, False, True, False, False, False, False, False, True, False]


def test_hits_at_k() -> None:
    assert hits_at_k(FLAGS, 4) == 1.0
    assert hits_at_k(FLAGS, 2) == 0.0
    late = [False] * 6 + [True]
    assert hits_at_k(late, 4) == 0.0
    assert hits_at_k(late, 10) == 1.0
    assert hits_at_k([], 10) == 0.0


def test_reciprocal_rank_at_k() -> None:
    assert reciprocal_rank_at_k(FLAGS, 10) == pytest.approx(1 / 3)
    assert reciprocal_rank_at_k(FLAGS, 2) == 0.0
    assert reciprocal_rank_at_k([True, True], 10) == 1.0


def test_average_precision_at_k_hand_example() -> None:
    # relevant at ranks 1, 3, 4 of 5; 3 relevant exist:
    # (1/1 + 2/3 + 3/4) / 3 = (12 + 8 + 9) / 36 = 29/36
    flags = [True, False, True, True, False]
    assert average_precision_at_k(flags, 10, 3) == pytest.approx(29 / 36)
    # 4 relevant exist, one never retrieved -> divided by 4
    assert average_precision_at_k(flags, 10, 4) == pytest.approx(29 / 48)
    # cut at k=2: only rank 1 counts, divided by min(k=2, 3) = 2
    assert average_precision_at_k(flags, 2, 3) == pytest.approx(0.5)
    # FLAGS: ranks 3 and 9, 2 relevant -> (1/3 + 2/9) / 2 = 5/18
    assert average_precision_at_k(FLAGS, 10, 2) == pytest.approx(5 / 18)


def test_average_precision_at_k_edges() -> None:
    assert average_precision_at_k([False, False], 10, 2) == 0.0
    assert average_precision_at_k([True], 10, 0) == 0.0
    # more relevant chunks than relevant facts (overlapping chunks): stays within [0, 1]
    assert average_precision_at_k([True, True, True], 10, 1) == pytest.approx(1.0)
    assert average_precision_at_k([True] * 10, 10, 20) == pytest.approx(1.0)


def test_evidence_recall_at_k() -> None:
    texts = ["alpha beta", "gamma\ndelta", "epsilon"]
    facts = ["alpha  beta", "gammadelta", "epsilon", "zeta", "epsilon"]  # 4 distinct
    assert evidence_recall_at_k(texts, facts, 10) == pytest.approx(3 / 4)
    assert evidence_recall_at_k(texts, facts, 2) == pytest.approx(2 / 4)
    assert evidence_recall_at_k(texts, [], 10) == 0.0


def test_all_gold_docs_at_k() -> None:
    ids = ["a", "a", "b", "c"]
    assert all_gold_docs_at_k(ids, ["a", "c"], 4) == 1.0
    assert all_gold_docs_at_k(ids, ["a", "c"], 3) == 0.0
    assert all_gold_docs_at_k(ids, ["a"], 1) == 1.0
    assert all_gold_docs_at_k(ids, [], 4) == 0.0


# --- latency ----------------------------------------------------------------------------------


def test_percentile_linear_like_numpy() -> None:
    values = [15, 20, 35, 40, 50]
    assert percentile(values, 50) == 35
    assert percentile(values, 0) == 15
    assert percentile(values, 100) == 50
    # rank = 4 * 0.4 = 1.6 -> 20 + 0.6 * 15 = 29
    assert percentile(values, 40) == pytest.approx(29.0)
    # unsorted input, rank = 3 * 0.95 = 2.85 -> 3 + 0.85 * 1 = 3.85
    assert percentile([4, 1, 3, 2], 95) == pytest.approx(3.85)
    assert percentile([7.0], 95) == 7.0
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile([1, 2], 101)


# --- citations --------------------------------------------------------------------------------


def test_citation_recall_and_precision() -> None:
    assert citation_recall([True, False, True, True]) == pytest.approx(0.75)
    assert citation_recall([]) == 0.0
    assert citation_precision([True, False]) == pytest.approx(0.5)
    assert citation_precision([]) == 0.0


def test_page_checks_count_the_citations_of_gold_documents() -> None:
    def row(correct: bool, *pages: int | None, doc: str = "m.pdf", **extra) -> dict:
        cited = [{"n": i, "doc_id": doc, "page": p} for i, p in enumerate(pages, start=1)]
        return {"gold_pages": [8, 9], "gold_doc_ids": ["m.pdf"], "correct": correct,
                "citation_pages": cited, **extra}  # fmt: skip

    rows = [
        row(True, 8, 17, None),  # a page outside the gold ones, or none at all, is wrong
        row(False, 32),  # a wrong answer's citation: its claim's page, not a gold one
        row(True, 3, doc="other.pdf"),  # not a gold document
        row(True, 9, error="llm"),
        row(False, 8, refused=True),
        {**row(True, 5), "gold_pages": []},
    ]
    assert page_checks(rows) == [True, False, False, False]
    assert page_checks(rows, correct_only=True) == [True, False, False]


# --- per question -----------------------------------------------------------------------------


def test_retrieval_measures_hand_checked():
    q = Question(
        id="q",
        text="?",
        answers=["x"],
        answerable=True,
        question_type="t",
        gold_doc_ids=["a", "b"],
        facts=["fact one", "fact two"],
    )
    ranked = [("c", "nothing"), ("a", "has fact one"), ("c", "x"), ("b", "fact  two here")]
    m = retrieval_measures(q, ranked)
    assert m["hits@4"] == 1.0 and m["mrr@10"] == 0.5 and m["first_relevant_rank"] == 2
    assert m["map@10"] == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert m["evidence_recall@10"] == 1.0 and m["all_gold_docs@10"] == 1.0
    unanswerable = Question("u", "?", [], False, "t", [], [])
    assert retrieval_measures(unanswerable, ranked) is None


@pytest.mark.parametrize(
    ("answer", "golds", "substring", "words"),
    [
        ("It was announced on Friday.", ["No"], 1.0, 0.0),
        ("No, Moscow rejected it [1].", ["No"], 1.0, 1.0),
        ("The Kremlin.", ["the Kremlin"], 1.0, 1.0),
        ("1,000 prisoners", ["1000"], 1.0, 1.0),
    ],
)
def test_whole_word_accuracy_next_to_substring_accuracy(answer, golds, substring, words):
    assert answer_accuracy(answer, golds) == substring
    assert contains_words(answer, golds) == words


@pytest.mark.parametrize(
    ("answer", "golds", "words"),
    [
        ("Yes. Both reported it [1][2].", ["Yes"], 1.0),
        ("No. Only Fortune reported it [1].", ["Yes"], 0.0),
        ('Yes. The report said "No. 3 Michigan beat Penn State" [2].', ["no"], 0.0),
        ("It is not clear whether yes or no.", ["yes"], 0.0),
    ],
)
def test_yes_no_gold_must_be_the_verdict(answer, golds, words):
    assert contains_words(answer, golds) == words


def test_answer_measures_of_an_answer_a_refusal_and_an_error() -> None:
    q = Question("q", "?", ["Maria Lopez"], True, "t", ["bakery"], [])
    answered = answer_measures(q, "Maria Lopez founded it [1][2].", False, [1, 2], None)
    assert answered["accuracy"] == answered["accuracy_words"] == 1.0 and answered["correct"]
    assert answered["cited"] == [1, 2] and answered["citation_valid"] is True
    assert answered["f1"] == pytest.approx(2 * (2 / 4) * 1 / (2 / 4 + 1))
    unshown = answer_measures(q, "Maria Lopez founded it [1-3].", False, [1, 2], None)
    assert unshown["cited"] == [1, 2, 3] and unshown["citation_valid"] is False
    refused = answer_measures(q, "The documents do not say.", True, [1], None)
    assert refused["accuracy"] == 0.0 and not refused["correct"]
    assert refused["citation_valid"] is None
    failed = answer_measures(q, "", False, [], "LLM down")
    assert failed["accuracy"] == 0.0 and failed["citation_valid"] is None
    unanswerable = Question("u", "?", [], False, "t", [], [])
    assert answer_measures(unanswerable, "The documents do not say.", True, [], None)["correct"]
    assert not answer_measures(unanswerable, "", True, [], "LLM down")["correct"]

"""Hand-computed cases for rag/metrics.py."""

from __future__ import annotations

import math

import pytest

from rag.metrics import (
    all_gold_docs_at_k,
    answer_accuracy,
    average_precision_at_k,
    citation_precision,
    citation_recall,
    cited_numbers,
    contains_fact,
    evidence_recall_at_k,
    hits_at_k,
    is_refusal_text,
    normalize_answer,
    percentile,
    reciprocal_rank_at_k,
    relevance_flags,
    split_sentences,
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


# --- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "The documents do not say.",
        "Insufficient information.",
        "The documents don't say who led Ukraine's delegation.",
        "The documents don\u2019t say who led Ukraine\u2019s delegation.",
        "I cannot find this in the documents.",
        "I couldn't find that in the provided sources.",
        "The provided context does not mention the exact venue.",
        "The article doesn't specify where in Istanbul the talks took place.",
        "This is not mentioned in the documents.",
        "There is no information about Ukraine's delegation.",
        "I don't know.",
        "The documents do not say. They only mention Medinsky [1].",
    ],
)
def test_is_refusal_text_positives(text: str) -> None:
    assert is_refusal_text(text)


@pytest.mark.parametrize(
    "text",
    [
        "Moscow did not accept the ceasefire [2].",
        "No. Moscow rejected the 30-day ceasefire [2].",
        "Russia's lead negotiator was Vladimir Medinsky [3].",
        "The Kremlin gave no details on that discussion [4].",
        "Further details on that discussion remain limited [4].",
        "Trump did not say when the swap would take place, only that it was shortly [1].",
        "Ukraine could not secure an immediate ceasefire [2].",
        "",
    ],
)
def test_is_refusal_text_negatives(text: str) -> None:
    assert not is_refusal_text(text)


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


def test_split_sentences_keeps_citations_with_their_sentence() -> None:
    answer = (
        "Moscow rejected the 30-day ceasefire [2]. Medinsky led Russia's side. [3] "
        "The U.S. President announced it on Friday [1][4]!\n- Istanbul hosted the talks [2]"
    )
    assert split_sentences(answer) == [
        "Moscow rejected the 30-day ceasefire [2].",
        "Medinsky led Russia's side. [3]",
        "The U.S. President announced it on Friday [1][4]!",
        "- Istanbul hosted the talks [2]",
    ]
    assert split_sentences("") == []
    assert split_sentences("No. Moscow rejected it [2].") == ["No.", "Moscow rejected it [2]."]
    assert split_sentences("It says e.g. this. And that.") == ["It says e.g. this.", "And that."]
    assert split_sentences('Yes. It said "No. 3 Michigan won." [2]') == [
        "Yes.",
        'It said "No. 3 Michigan won." [2]',
    ]


def test_cited_numbers() -> None:
    assert cited_numbers("Moscow rejected it [1].") == [1]
    assert cited_numbers("Both [2][3] agree.") == [2, 3]
    assert cited_numbers("Both [1, 2] agree [2].") == [1, 2]
    assert cited_numbers("Range [1-3] and [5; 6]") == [1, 2, 3, 5, 6]
    assert cited_numbers("No citations here, 2022 [sic]") == []

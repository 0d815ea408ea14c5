"""The text rules every part of rag shares (rag/text.py): refusals, sentences, citation marks,
token counts. Hand-computed cases."""

from __future__ import annotations

import pytest

from rag.text import (
    CITATION,
    cited_numbers,
    count_tokens,
    is_refusal_text,
    mark_numbers,
    passage_sentences,
    split_sentences,
    strip_citations,
)

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


# --- sentences and citation marks -----------------------------------------------------------


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


def test_passage_sentences_keep_lines_without_an_end_mark() -> None:
    """A table row, a heading or an option list's item has no end mark before its line break;
    each is a sentence of its own, not left out. A hard-wrapped paragraph's next line, going on
    in lower case, stays in its sentence; a decimal point ends nothing."""
    text = (
        "GSS_S_CONTEXT_EXPIRED 12 The context has expired\n\n"
        "GSS_S_FAILURE 13 Miscellaneous failure (see text)\n"
        "2.8 Version Check\n"
        "It is version 0.21. If you run\n  several systems, point\n  each at one. Done"
    )
    assert [m.group(0).strip() for m in passage_sentences(text)] == [
        "GSS_S_CONTEXT_EXPIRED 12 The context has expired",
        "GSS_S_FAILURE 13 Miscellaneous failure (see text)",
        "2.8 Version Check",
        "It is version 0.21.",
        "If you run\n  several systems, point\n  each at one.",
        "Done",
    ]
    for match in passage_sentences(text):  # offsets index the text
        assert text[match.start() : match.end()] == match.group(0)


def test_cited_numbers() -> None:
    assert cited_numbers("Moscow rejected it [1].") == [1]
    assert cited_numbers("Both [2][3] agree.") == [2, 3]
    assert cited_numbers("Both [1, 2] agree [2].") == [1, 2]
    assert cited_numbers("Range [1-3] and [5; 6]") == [1, 2, 3, 5, 6]
    assert cited_numbers("No citations here, 2022 [sic]") == []


@pytest.mark.parametrize(
    ("mark", "numbers"),
    [
        ("[1]", [1]),
        ("[1, 2]", [1, 2]),
        ("[1; 2]", [1, 2]),
        ("[1-3]", [1, 2, 3]),
        ("[2\u20134]", [2, 3, 4]),
        ("[1 and 2]", [1, 2]),
        ("[ 3 ]", [3]),
        ("[3-1]", [3, 1]),  # a reversed range names its two ends
    ],
)
def test_one_grammar_of_citation_marks(mark: str, numbers: list[int]) -> None:
    assert CITATION.fullmatch(mark)
    assert mark_numbers(mark) == numbers
    assert cited_numbers(f"A claim {mark}.") == list(dict.fromkeys(numbers))


@pytest.mark.parametrize("text", ["array[i]", "[sic]", "[]", "[1,]", "[a]"])
def test_brackets_that_are_not_citation_marks(text: str) -> None:
    assert CITATION.search(text) is None and cited_numbers(text) == []


def test_strip_citations_removes_every_mark_and_collapses_spaces() -> None:
    assert strip_citations("Opened in 1932 [1], cost [2-3] and more [1 and 4].") == (
        "Opened in 1932, cost and more."
    )
    assert strip_citations("array[i] stays") == "array[i] stays"


def test_count_tokens_counts_cl100k_tokens() -> None:
    assert count_tokens("") == 0
    assert count_tokens("hello world") == 2
    assert count_tokens("<|endoftext|>") > 1  # special tokens are counted as plain text

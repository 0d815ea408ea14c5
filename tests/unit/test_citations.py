"""The lexical citation check on answers that join several documents (MultiHop-style)."""

from __future__ import annotations

import pytest

from rag.answer.citations import check_answer
from rag.events import Passage

REFUSAL = "The documents do not say."


def passage(n: int, text: str, source: str = "", published: str | None = None) -> Passage:
    return Passage(n, f"c{n}", f"d{n}", f"Story {n}", text, 0, len(text), published, source)


PASSAGES = [
    passage(1, "Bankman-Fried told Alameda to take the loans off its books.", "The Verge"),
    passage(
        2, "Google paid billions to stay the default search engine.", "TechCrunch", "2023-10-31"
    ),
    passage(3, "The jury heard that FTX lost customer deposits.", "Cnbc | World Business News"),
]


def check(answer: str, question: str = "Is it so?"):
    return check_answer(answer, PASSAGES, question, REFUSAL)


def test_leading_verdict_is_kept_before_a_supported_fact():
    checked = check("Yes. TechCrunch reported that Google paid billions [2].")
    assert not checked.refused
    assert checked.text == "Yes. TechCrunch reported that Google paid billions [2]."


def test_verdict_alone_with_unsupported_facts_is_a_refusal():
    checked = check("No. Microsoft paid Apple 3 billion dollars [2].")
    assert checked.refused and checked.text == REFUSAL and checked.cited == {}


def test_source_and_date_shown_with_a_passage_count_as_its_evidence():
    checked = check("On 31 October 2023, TechCrunch reported that Google paid billions [2].")
    assert not checked.refused and list(checked.cited) == [2]
    wrong_date = check("On 12 October 2023, TechCrunch reported that Google paid billions [2].")
    assert wrong_date.refused


def test_uncited_claim_spread_over_two_documents_cites_both():
    answer = "Yes. The Verge says Alameda took the loans, while Cnbc says FTX lost deposits."
    checked = check(answer)
    assert not checked.refused and sorted(checked.cited) == [1, 3]
    assert checked.text.endswith("[1][3].")


def test_a_name_the_question_spells_out_is_found_by_one_of_its_words():
    question = "Did Sam Bankman-Fried tell Alameda Research to take the loans?"
    checked = check("Yes. Sam Bankman-Fried told Alameda Research to take the loans [1].", question)
    assert not checked.refused and list(checked.cited) == [1]
    # ...but a name found in no passage at all is still no evidence, even if asked about
    question = "Did Caroline Ellison tell Alameda to take the loans?"
    assert check("Yes. Caroline Ellison told Alameda to take the loans [1].", question).refused


@pytest.mark.parametrize("answer", ["Yes [2].", "Yes. [2]"])
def test_a_cited_bare_verdict_stays_an_answer(answer):
    checked = check(answer)
    assert not checked.refused and list(checked.cited) == [2]


def test_abbreviation_before_the_citation_keeps_one_full_stop():
    checked = check_answer(
        "The owner is Rogers Communications Inc. [1].",
        [passage(1, "Rogers Communications Inc. owns the network.")],
        "Who owns it?",
        REFUSAL,
    )
    assert checked.text == "The owner is Rogers Communications Inc [1]."


@pytest.mark.parametrize("mark", ["[1 and 2]", "[2-3]", "[2\u20133]", "[1, 2]"])
def test_range_and_list_marks_are_citations_reduced_to_the_supporting_passage(mark):
    checked = check(f"Google paid billions {mark}.")
    assert not checked.refused and list(checked.cited) == [2]
    assert checked.text == "Google paid billions [2]."

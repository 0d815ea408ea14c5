"""An answer must say something its short question did not (`adds_to_question`)."""

from __future__ import annotations

import pytest

from rag.answer.citations import SentenceGate, adds_to_question, check_answer
from rag.events import Passage

REFUSAL = "The documents do not say."
TALKS = Passage(
    1,
    "c1",
    "seed",
    "Prisoner swap",
    "The talks were held in Istanbul at the Dolmabahce Palace, officials said.",
    0,
    80,
)


@pytest.mark.parametrize(
    ("answer", "question"),
    [
        ("Istanbul [1].", "Where exactly in Istanbul were the talks held?"),
        (
            "The official who described the list is Ukrainian military intelligence officials [1].",
            "What is the name of the Ukrainian military intelligence official who described the "
            "list?",
        ),
        (
            "The Fortran routine is the variant of AMD that skips aggressive absorption [1].",
            "Which Fortran routine is the variant of AMD that skips aggressive absorption?",
        ),
    ],
)
def test_an_answer_in_the_questions_own_words_adds_nothing(answer, question):
    assert not adds_to_question(answer, question)


@pytest.mark.parametrize(
    ("answer", "question"),
    [
        ("At the Dolmabahce Palace [1].", "Where exactly in Istanbul were the talks held?"),
        # identifiers stay whole: built from the question's words, yet new
        (
            "The NIMBUS_API_KEY environment variable [1].",
            "Which environment variable does the Nimbus SDK read the API key from?",
        ),
        ("The gss.h header file [1].", "Which header file should a program using GSS include?"),
        ("MOSTLYCLEANFILES [1].", "Which variable lists files that make mostlyclean removes?"),
        ("git log [1].", "If DISPLAY isn't set, what does git bisect visualize open?"),
    ],
)
def test_an_answer_naming_something_new_adds_to_the_question(answer, question):
    assert adds_to_question(answer, question)


@pytest.mark.parametrize(
    ("answer", "question"),
    [
        # yes/no: the answer restates the question
        ("The Russian side confirmed receiving the list [1].", "Did the Russian side confirm it?"),
        # a choice: the answer is one of the question's options
        ("Kyiv [1].", "Which side handed over the list, Kyiv or Moscow?"),
        # a long, many-sided question often names the entity it asks for
        (
            "Meta [1].",
            "Considering the information provided by TechCrunch that Meta's advertising "
            "subscription model may conflict with GDPR regulations and the separate issue of "
            "Palestinian users' frustration with Meta's moderation, which company faces both?",
        ),
    ],
)
def test_questions_that_may_be_answered_in_their_own_words(answer, question):
    assert adds_to_question(answer, question)


def test_the_check_refuses_an_echoed_answer_and_keeps_an_informative_one():
    question = "Where exactly in Istanbul were the talks held?"
    echoed = check_answer("Istanbul [1].", [TALKS], question, REFUSAL)
    assert echoed.refused and echoed.text == REFUSAL and echoed.cited == {}
    informative = check_answer("At the Dolmabahce Palace [1].", [TALKS], question, REFUSAL)
    assert not informative.refused and informative.cited == {1: ["At the Dolmabahce Palace."]}


def test_an_echoed_sentence_is_dropped_and_a_new_fact_kept():
    checked = check_answer(
        "The talks were held in Istanbul [1]. They were held at the Dolmabahce Palace [1].",
        [TALKS],
        "Where exactly in Istanbul were the talks held?",
        REFUSAL,
    )
    assert not checked.refused
    assert checked.text == "They were held at the Dolmabahce Palace [1]."
    assert [v.kept for v in checked.verdicts] == [False, True]


def test_the_sentence_gate_withholds_an_echoed_sentence():
    gate = SentenceGate([TALKS], "Where exactly in Istanbul were the talks held?")
    assert gate.feed("The talks were held in Istanbul [1]. ") == ""
    assert gate.feed("They were held at the Dolmabahce Palace [1].") + gate.flush() == (
        "They were held at the Dolmabahce Palace [1]."
    )

"""An identifier a short question names must be spelt out where the answer's citations point
(`question_identifiers`, `names_asked_identifiers` in rag.answer.citations)."""

from __future__ import annotations

import pytest

from rag.answer.citations import (
    SentenceGate,
    check_answer,
    names_asked_identifiers,
    question_identifiers,
)
from rag.events import Passage

REFUSAL = "The documents do not say."


def passage(n: int, text: str, doc: str = "postfix", start: int = 0, section: str = "") -> Passage:
    return Passage(n, f"c{n}", doc, doc, text, start, start + len(text), section=section)


# a manual's passages on parameters alike: the number fits, the parameter is another one
OTHER_LIMIT = passage(
    1, "The default smtp_destination_concurrency_limit of 20 seems enough to load a system."
)
ASKED_LIMIT = passage(
    2,
    "transport_destination_concurrency_failed_cohort_limit controls when a destination is "
    "considered dead.",
    start=9000,
)


@pytest.mark.parametrize(
    ("question", "identifiers"),
    [
        ("What is the default value of the in_flow_delay parameter?", ["in_flow_delay"]),
        ("What is GSS_S_CONTEXT_EXPIRED's routine error value?", ["gss_s_context_expired"]),
        ("Which kern.maxproc value does the guide give?", ["kern.maxproc"]),
        ("What does semver.truncate() return?", ["semver.truncate"]),
        ("What does helpWidth control?", ["helpwidth"]),
        ("Which routines does the amd_l_* family hold?", ["amd_l_"]),
        # not identifiers: abbreviations, units, versions, capitalised words
        ("Did the U.S. and the U.K. sign it, e.g. in 2.7 km of Kyiv?", []),
        ("What sampling rate in kHz does Speex use?", []),
        ("Who led Russia's delegation in Istanbul?", []),
    ],
)
def test_the_identifiers_a_question_names(question, identifiers):
    assert question_identifiers(question) == identifiers


def test_a_number_cited_to_another_parameters_passage_is_refused():
    question = "What is the default value of transport_destination_concurrency_failed_cohort_limit?"
    answer = "The default value of transport_destination_concurrency_failed_cohort_limit is 20 [1]."
    checked = check_answer(answer, [OTHER_LIMIT, ASKED_LIMIT], question, REFUSAL)
    assert checked.refused and checked.text == REFUSAL
    assert SentenceGate([OTHER_LIMIT, ASKED_LIMIT], question).feed(answer + " ") == ""
    # the same answer to a question about the parameter its passage does name stands
    question = "What is the default value of smtp_destination_concurrency_limit?"
    answer = "The default value of smtp_destination_concurrency_limit is 20 [1]."
    assert not check_answer(answer, [OTHER_LIMIT, ASKED_LIMIT], question, REFUSAL).refused


def test_the_identifier_may_stand_in_the_cited_passages_context():
    setting = "20.5.1. Settings"
    named = passage(1, "synchronous_commit (enum) turns asynchronous commit on.", "pg", 0, setting)
    delay = passage(2, "The delay is at most three times wal_writer_delay.", "pg", 4000, setting)
    elsewhere = passage(3, "The delay is at most three times wal_writer_delay.", "pg", 9000)
    question = "With synchronous_commit off, how long until a commit is safe?"
    # the same section of the same document
    assert names_asked_identifiers(question, [delay], [named, delay])
    # the text right around the cited passage
    around = passage(2, delay.text, "pg", named.end + 10)
    assert names_asked_identifiers(question, [around], [named, around])
    # neither: another section, far away
    assert not names_asked_identifiers(question, [elsewhere], [named, elsewhere])
    # another document's passage is no context, whatever its section
    other = passage(1, named.text, "other", 0, setting)
    assert not names_asked_identifiers(question, [delay], [other, delay])


def test_a_long_question_joining_documents_is_left_to_the_other_checks():
    question = (
        "Does the article from Sporting News and the one from CBSSports.com both report that "
        "the quarterback threw two touchdowns in the game on Sunday night against the Bears?"
    )
    assert question_identifiers(question) == ["cbssports.com"]
    report = passage(1, "The quarterback threw two touchdowns on Sunday night.", "news")
    assert names_asked_identifiers(question, [report], [report])

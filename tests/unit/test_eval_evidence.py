"""Evidence-removed questions: every passage that holds the answer is taken away from what the
model may be shown, and the question now expects a refusal."""

from __future__ import annotations

from fakes import FakeEmbedding, add_news

from rag.knowledge_base import KnowledgeBase
from rag.retrieval import Retriever
from rag_eval.data import Question
from rag_eval.evidence import EvidenceRemovingRetriever, evidence_removed

QUESTION = Question(
    "q1",
    "Which company paid billions for search defaults?",
    ["Alphabet"],
    True,
    "inference_query",
    ["a"],
    ["Alphabet paid billions for search defaults."],
)


def test_removed_questions_expect_a_refusal_and_keep_their_ids():
    unanswerable = Question("q2", "Who won?", [], False, "null_query", [], [])
    removed = evidence_removed([QUESTION, unanswerable])
    assert [(q.id, q.answerable, q.question_type) for q in removed] == [
        ("q1", False, "evidence_removed")
    ]


def test_no_candidate_holding_the_answer_is_left(settings):
    settings.min_dense_score = 0.1
    kb = KnowledgeBase(settings, FakeEmbedding())
    add_news(
        kb,
        [
            ("a", "TechCrunch", "2023-10-04", "Alphabet paid billions for search defaults."),
            ("b", "The Verge", "2023-10-05", "Analysts say Alphabet paid billions for defaults."),
            ("c", "Wired", "2023-10-06", "Search defaults cost billions, a judge heard."),
        ],
    )
    base = Retriever(settings, kb)
    assert {c.doc_id for c in base.retrieve(QUESTION.text).candidates} == {"a", "b", "c"}
    remover = EvidenceRemovingRetriever(settings, kb, base)
    remover.remove_evidence_of(QUESTION)
    left = remover.retrieve(QUESTION.text).candidates
    # the gold article entirely, and another article that states the gold answer
    assert {c.doc_id for c in left} == {"c"}
    assert remover.removed == 2

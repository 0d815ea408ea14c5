"""Evidence-removed questions: an answerable question asked with every passage that holds its
answer taken away from what the model may be shown. The honest answer becomes a refusal, so
these items measure (and give data to fit) refusing a tempting question the documents no longer
answer, with no hand-labelling.

What counts as holding the answer, generously (taking away too much only makes the item
harder to get wrong): any chunk of a gold document that, with the sentences the prompt may add
around it, contains a gold fact or a gold answer, or lies on a gold page or in a gold section;
for a question whose gold documents are whole news articles (no pages, no sections), every chunk
of those articles; and a chunk of any document containing a gold answer of at least four
characters (not "Yes"/"No").
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from rag.config import Settings
from rag.knowledge_base import KnowledgeBase
from rag.retrieval import Retriever
from rag.retrieval.candidates import Candidate, Retrieval
from rag_eval.data import Question
from rag_eval.metrics import normalize_answer

MIN_ANSWER_CHARS = 4  # shorter golds ("Yes", "50") are looked for only in gold documents
FACT_OVERLAP = 0.8  # share of a gold fact's words a window must hold to count as holding it


def evidence_removed(questions: list[Question]) -> list[Question]:
    """The answerable questions, each now expecting a refusal (ids kept, so held-out ranking
    still picks a fold that never saw the question)."""
    return [
        replace(q, answerable=False, question_type="evidence_removed", history=list(q.history))
        for q in questions
        if q.answerable
    ]


@dataclass
class Evidence:
    """What holds one question's answer."""

    doc_ids: set[str]
    answers: list[str]
    facts: list[set[str]]
    pages: set[int] = field(default_factory=set)
    sections: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, q: Question, sections: list[str]) -> Evidence:
        return cls(
            set(q.gold_doc_ids),
            [a for a in (normalize_answer(a) for a in q.answers) if a],
            [set(normalize_answer(f).split()) for f in q.facts if f.strip()],
            set(q.gold_pages),
            [s.lower() for s in sections if s],
        )

    def held_in(self, text: str, in_gold_doc: bool) -> bool:
        normal = f" {normalize_answer(text)} "
        tokens = set(normal.split())
        for answer in self.answers:
            if (in_gold_doc or len(answer) >= MIN_ANSWER_CHARS) and f" {answer} " in normal:
                return True
        return in_gold_doc and any(
            fact and len(fact & tokens) / len(fact) >= FACT_OVERLAP for fact in self.facts
        )


class EvidenceRemovingRetriever(Retriever):
    """The engine's retriever, minus every candidate holding the current question's answer
    (`remove_evidence_of` names the question before it is asked)."""

    def __init__(self, settings: Settings, kb: KnowledgeBase, base: Retriever) -> None:
        super().__init__(settings, kb, base.reranker())
        self._evidence: Evidence | None = None
        self.removed = 0  # candidates taken away for the current question

    def remove_evidence_of(self, q: Question, sections: list[str] | None = None) -> None:
        self._evidence = Evidence.of(q, sections or [])

    def retrieve(self, question: str) -> Retrieval:
        retrieval = super().retrieve(question)
        if self._evidence is None:
            return retrieval
        kept = [c for c in retrieval.candidates if not self._holds_answer(c, self._evidence)]
        self.removed = len(retrieval.candidates) - len(kept)
        return replace(retrieval, candidates=kept)

    def _holds_answer(self, candidate: Candidate, evidence: Evidence) -> bool:
        node = candidate.node.node
        meta = node.metadata
        in_gold = candidate.doc_id in evidence.doc_ids
        document = self.kb.document(candidate.doc_id, meta.get("content_hash"))
        if in_gold and document is not None and not document.pages and not document.headings:
            return True  # a news article: every part of it is evidence
        start, end = node.start_char_idx or 0, node.end_char_idx or 0
        reach = self.settings.passage_context_chars
        if document is not None:
            window = document.text[max(0, start - reach) : end + reach]
            if in_gold and (
                document.page_at(start) in evidence.pages
                or document.page_at(end) in evidence.pages
                or _in_sections(document.section_at(start), evidence.sections)
            ):
                return True
        else:
            window = node.get_content(metadata_mode="none")
        return evidence.held_in(window + " " + candidate.unit_text, in_gold)


def _in_sections(section: str | None, gold: list[str]) -> bool:
    if not section or not gold:
        return False
    section = section.lower()
    return any(section == g or section.startswith(g + " ") or g in section for g in gold)

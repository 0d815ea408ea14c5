"""The eval's judge (rag_eval.judge): its prompt, verdicts, ALCE citation recall and precision."""

from __future__ import annotations

import pytest
from fakes import FakeLLM

from rag.events import Passage
from rag.llm import LLMError
from rag_eval.judge import Judge, judge_citations, judge_rows, parse_verdict


class ScriptedJudge(Judge):
    """Supported iff every needed word is in the passages given."""

    def __init__(self) -> None:
        super().__init__(llm=None)

    def supported(self, passages, claim):
        self.calls += 1
        text = " ".join(p.text for p in passages)
        return all(word in text for word in ("Lopez", "1998") if word in claim)


def passage(n: int, text: str) -> Passage:
    return Passage(n=n, chunk_id=f"c{n}", doc_id="d", title="t", text=text, start=0, end=0)


def test_alce_citation_precision_counts_needed_citations_only():
    passages = [passage(1, "Maria Lopez"), passage(2, "in 1998"), passage(3, "Lopez 1998")]
    judge = ScriptedJudge()
    # needs [1] and [2] together: neither supports it alone, removing either loses support
    out = judge_citations(judge, "Lopez founded it in 1998 [1][2].", passages)
    assert out["citation_recall"] == 1.0 and out["citation_precision"] == 1.0
    # [3] supports it alone; [2] does not, and without it [3] still does -> [2] irrelevant
    out = judge_citations(judge, "Lopez founded it in 1998 [2][3]. Uncited.", passages)
    assert out["citation_recall"] == 0.5  # the uncited sentence is unsupported
    assert out["citation_precision"] == 0.5
    # a citation naming no shown passage never counts
    out = judge_citations(judge, "Lopez founded it [9].", passages)
    assert out["citation_recall"] == 0.0 and out["citation_precision"] == 0.0


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [("YES", True), ("no.", False), (" Yes, it is.", True), ("**NO**", False), ("maybe", None)],
)
def test_judge_verdict_parsing(reply, verdict):
    assert parse_verdict(reply) is verdict


def test_judge_asks_the_llm_with_the_judge_prompt():
    llm = FakeLLM("YES", "nope")
    judge = Judge(llm)
    assert judge.supported([passage(1, "Maria Lopez founded it.")], "Lopez founded it.") is True
    assert judge.supported([passage(1, "x")], "y") is False and judge.unparsed == 1
    user = llm.calls[0][-1]["content"]
    assert "Maria Lopez founded it." in user and "Claim: Lopez founded it." in user


def test_a_failed_judge_call_counts_as_unsupported_and_as_an_error():
    judge = Judge(FakeLLM(LLMError("Cannot reach the LLM")))
    assert judge.supported([passage(1, "Maria Lopez")], "Lopez.") is False
    assert (judge.calls, judge.errors, judge.unparsed) == (1, 1, 0)


def test_only_answered_rows_are_judged():
    passages = [passage(1, "Maria Lopez founded it in 1998")]
    rows = [
        {"answer": "Lopez founded it in 1998 [1].", "refused": False, "_passages": passages},
        {"answer": "The documents do not say.", "refused": True, "_passages": passages},
        {"answer": "", "refused": False, "error": "LLM down", "_passages": []},
    ]
    judge = ScriptedJudge()
    judge_rows(judge, rows, "test")
    assert rows[0]["citation_recall"] == rows[0]["citation_precision"] == 1.0
    assert "citation_recall" not in rows[1] and "citation_recall" not in rows[2]
    assert judge.calls == 1

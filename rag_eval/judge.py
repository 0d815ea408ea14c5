"""The one model judgement the eval makes: do the cited passages support an answer sentence
(`prompts/judge.txt`, YES/NO)? ALCE citation recall and precision come from its verdicts."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Sequence
from typing import Any

from rag import prompts
from rag.events import Passage
from rag.llm import LLM, LLMError
from rag.text import cited_numbers, split_sentences, strip_citations
from rag_eval import metrics

log = logging.getLogger(__name__)


class Judge:
    """Does a set of passages support a claim? One short LLM call, a YES/NO answer."""

    def __init__(self, llm: LLM) -> None:
        self.llm = llm
        self.calls = 0
        self.unparsed = 0
        self.errors = 0

    def supported(self, passages: Sequence[Passage], claim: str) -> bool:
        text = "\n\n".join(f"Title: {p.title}\n{' '.join(p.text.split())}" for p in passages)
        messages = prompts.conversation("judge", passages=text, claim=claim)
        self.calls += 1
        try:
            reply = "".join(self.llm.stream(messages, max_tokens=4))
        except LLMError as exc:
            self.errors += 1
            log.warning("judge failed: %s", exc)
            return False
        verdict = parse_verdict(reply)
        if verdict is None:
            self.unparsed += 1
            log.info("judge reply not YES/NO: %r", reply)
            return False
        return verdict


def parse_verdict(reply: str) -> bool | None:
    """The judge's first YES or NO (any case, any punctuation around it); None if neither."""
    match = re.search(r"\b(yes|no)\b", reply, re.IGNORECASE)
    return None if match is None else match.group(1).lower() == "yes"


def judge_citations(judge: Judge, answer: str, passages: Sequence[Passage]) -> dict[str, Any]:
    """ALCE citation recall and precision of one answer.

    Recall: a sentence counts when the concatenation of its cited passages supports it (one call
    per cited sentence). Precision: a citation counts when the sentence is supported and the
    citation either supports it alone or is needed (removing it loses support); extra calls only
    for sentences with more than one citation. Citations of unshown passages never count.
    """
    by_n = {p.n: p for p in passages}
    supported: list[bool] = []
    relevant: list[bool] = []
    judged: list[dict[str, Any]] = []
    for sentence in split_sentences(answer):
        claim = strip_citations(sentence)
        if not claim:
            continue
        cited = cited_numbers(sentence)
        shown = [n for n in cited if n in by_n]
        relevant.extend(False for n in cited if n not in by_n)
        if not shown:
            supported.append(False)
            judged.append({"sentence": claim, "cited": cited, "supported": False})
            continue
        ok = judge.supported([by_n[n] for n in shown], claim)
        supported.append(ok)
        judged.append({"sentence": claim, "cited": cited, "supported": ok})
        if not ok or len(shown) == 1:
            relevant.extend([ok] * len(shown))
            continue
        for n in shown:
            if judge.supported([by_n[n]], claim):
                relevant.append(True)
            else:
                rest = [by_n[m] for m in shown if m != n]
                relevant.append(not judge.supported(rest, claim))
    return {
        "citation_recall": metrics.citation_recall(supported) if supported else None,
        "citation_precision": metrics.citation_precision(relevant) if relevant else None,
        "judged": judged,
    }


def judge_rows(judge: Judge, rows: list[dict[str, Any]], desc: str) -> None:
    todo = [r for r in rows if r.get("answer") and not r.get("refused") and not r.get("error")]
    for row in progress(todo, f"judging {desc}"):
        row.update(judge_citations(judge, row["answer"], row["_passages"]))


def progress(items: Sequence[Any], desc: str):
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="q", file=sys.stderr, dynamic_ncols=True)

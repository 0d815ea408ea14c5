"""Replaying the citation check on a report's raw answers, with one of its rules switched off.

The model's raw answers and the passages it was shown are in every `rag eval` report, and
they do not depend on the check. So replaying `rag.answer.citations.check_answer` on them with
a rule and without it lists exactly the answers that rule decides: on a report made before the
rule, the only answers of that run it can change; on one made with it, those it refused.
"""

from __future__ import annotations

import collections
import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import rag.answer.citations as citations
from rag.prompts import refusal_text
from rag.text import strip_citations
from rag_eval.metrics import answer_accuracy
from rag_eval.runners import passages_from_dicts


@contextlib.contextmanager
def switched_off(name: str, stand_in: Callable) -> Iterator[None]:
    """`rag.answer.citations.<name>` replaced by a stand-in that never objects."""
    rule = getattr(citations, name)
    setattr(citations, name, stand_in)
    try:
        yield
    finally:
        setattr(citations, name, rule)


def refused_by_check(row: dict, passages: list, refusal: str) -> bool:
    return citations.check_answer(
        row["raw_answer"], passages, row["question_used"], refusal
    ).refused


def replay(paths: list[str], name: str, stand_in: Callable) -> None:
    """Print, per report, each answer whose outcome the rule `name` changes, and a count."""
    refusal = refusal_text()
    for path in paths:
        rows = json.loads(Path(path).read_text(encoding="utf-8"))["rows"]
        counts: collections.Counter = collections.Counter()
        print(path)
        for row in rows:
            passages = passages_from_dicts(row.get("passages") or [])
            if row.get("refused_by") == "model" or not row.get("raw_answer") or not passages:
                continue
            with_rule = refused_by_check(row, passages, refusal)
            with switched_off(name, stand_in):
                without_rule = refused_by_check(row, passages, refusal)
            if with_rule == without_rule:
                continue
            kind = "answerable" if row["answerable"] else "unanswerable"
            right = row["answerable"] and (
                answer_accuracy(strip_citations(row["raw_answer"]), row["golds"]) > 0
            )
            outcome = "right without the rule" if right else "not right"
            ended = f"refused by {row['refused_by']}" if row.get("refused") else "given"
            counts[(kind, outcome, f"in that run {ended}")] += 1
            print(f"  {kind}, {outcome}, in that run {ended}: {row['question_used']}")
            print(f"    {row['raw_answer']}")
        print(f"  refused by the rule: {dict(counts) or 'none'}\n")

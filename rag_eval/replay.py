"""Replaying the citation check on a report's raw answers, with one of its rules switched off.

The model's raw answers and the passages it was shown are in every `rag eval` report, and
they do not depend on the check. So replaying `rag.answer.citations.check_answer` on them with
a rule and without it lists exactly the answers that rule decides: on a report made before the
rule, the only answers of that run it can change; on one made with it, those it refused.
`replay_outcomes` also puts each checked answer to the verifier, as `Engine.answer` does, since
a rule that changes which passage an answer cites changes what the verifier reads.
"""

from __future__ import annotations

import collections
import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import rag.answer.citations as citations
from rag.answer.verifier import SupportReview, Verifier
from rag.prompts import refusal_text
from rag.retrieval.plan import is_long
from rag.text import is_refusal_text, strip_citations
from rag_eval.data import question_key
from rag_eval.heldout import held_out_verifier
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


def final_outcome(
    row: dict, passages: list, verifier: Verifier, long_question_words: int, refusal: str
) -> str:
    """How `Engine.answer` ends a reported raw answer: refused by the check or the verifier, or
    given (right or not)."""
    question = row["question_used"]
    decides = not is_long(question, long_question_words)
    review = SupportReview(verifier, question, passages, decides=decides)
    checked = review.review(
        citations.check_answer(row["raw_answer"], passages, question, refusal), refusal
    )
    if checked.refused:
        return "refused by " + ("verifier" if review.refused else "check")
    text = strip_citations(checked.text)
    right = row["answerable"] and answer_accuracy(text, row["golds"]) > 0
    return "given right" if right else "given, not right"


def replay_outcomes(
    paths: list[str], name: str, stand_in: Callable, verifier: Verifier, long_question_words: int
) -> None:
    """Print, per report, each answer whose final outcome (check, then verifier) the rule `name`
    changes, and a count of the changes."""
    refusal = refusal_text()
    for path in paths:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
        rows, dataset = report["rows"], report["run"]["dataset"]
        # each question decided by a verifier that was not fitted on it, as `rag eval` does
        held_out, _ = held_out_verifier(
            dataset, [SimpleNamespace(id=row["id"]) for row in rows], verifier
        )
        counts: collections.Counter = collections.Counter()
        replayed = 0
        print(path)
        for row in rows:
            passages = passages_from_dicts(row.get("passages") or [])
            raw = row.get("raw_answer")
            if not raw or not passages or is_refusal_text(raw):
                continue
            replayed += 1
            if held_out is not None:
                held_out.hold_out(question_key(dataset, row["id"]))
            args = (row, passages, held_out or verifier, long_question_words, refusal)
            with_rule = final_outcome(*args)
            with switched_off(name, stand_in):
                without_rule = final_outcome(*args)
            if with_rule == without_rule:
                continue
            kind = "answerable" if row["answerable"] else "unanswerable"
            counts[(kind, f"{without_rule} -> {with_rule}")] += 1
            print(
                f"  {kind}, without the rule {without_rule}, with it {with_rule}: "
                f"{row['question_used']}"
            )
            print(f"    {raw}")
        print(f"  {replayed} answers replayed; changed by the rule: {dict(counts) or 'none'}\n")

"""Which answers of a `rag eval` report the rule against echoed answers
(`rag.answer.citations.adds_to_question`) decides: the citation check is replayed on each raw
answer and the passages it was shown, with the rule and without it, and every answer whose
outcome differs is listed. On a report made before the rule, these are the only answers of that
run the rule can change (the model's raw answers do not depend on the check); on one made with
it, they are the answers it refused.

    python evals/reports/session16/echoed_answers.py REPORT.json...
"""

import collections
import json
import sys
from pathlib import Path

import rag.answer.citations as citations
from rag.prompts import refusal_text
from rag.text import strip_citations
from rag_eval.metrics import answer_accuracy
from rag_eval.runners import passages_from_dicts

REFUSAL = refusal_text()
RULE = citations.adds_to_question


def refused_by_check(row: dict, passages: list, rule: bool) -> bool:
    citations.adds_to_question = RULE if rule else (lambda answer, question: True)
    try:
        return citations.check_answer(
            row["raw_answer"], passages, row["question_used"], REFUSAL
        ).refused
    finally:
        citations.adds_to_question = RULE


for path in sys.argv[1:]:
    rows = json.loads(Path(path).read_text(encoding="utf-8"))["rows"]
    counts: collections.Counter = collections.Counter()
    print(path)
    for row in rows:
        passages = passages_from_dicts(row.get("passages") or [])
        if row.get("refused_by") == "model" or not row.get("raw_answer") or not passages:
            continue
        if refused_by_check(row, passages, True) == refused_by_check(row, passages, False):
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

"""Which answers of earlier `rag eval` reports the rule against echoed answers
(`rag.answer.citations.adds_to_question`) would now refuse: given answers that say nothing their
short question did not. The model's raw answers do not depend on the check, so these are the
only answers of those runs the rule can change; the figures come from new `rag eval` runs.

    python evals/reports/session16/echoed_answers.py REPORT.json...
"""

import collections
import json
import sys
from pathlib import Path

from rag.answer.citations import adds_to_question

for path in sys.argv[1:]:
    rows = json.loads(Path(path).read_text(encoding="utf-8"))["rows"]
    counts: collections.Counter = collections.Counter()
    print(path)
    for row in rows:
        if row.get("refused") or row.get("error") or not row.get("answer"):
            continue
        if adds_to_question(row["answer"], row["question_used"]):
            continue
        kind = "answerable" if row["answerable"] else "unanswerable"
        outcome = "right" if row.get("correct") else "not right"
        counts[(kind, outcome)] += 1
        print(f"  {kind}, {outcome}: {row['question_used']}\n    {row['answer']}")
    given = sum(1 for r in rows if not r.get("refused") and not r.get("error"))
    print(f"  now refused, of {given} given: {dict(counts) or 'none'}\n")

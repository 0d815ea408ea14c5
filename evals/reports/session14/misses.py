"""Where the answerable questions of a `rag eval` run end: whether a gold answer stood in the
passages shown (normalised substring), and how each one ended (right, wrong, or refused by
whom); and how many of the verifier's refusals were of answers that were right.

    python evals/reports/session14/misses.py REPORT.json...
"""

import collections
import json
import sys
from pathlib import Path

from rag.text import strip_citations
from rag_eval.metrics import answer_accuracy, normalize_answer

for path in sys.argv[1:]:
    rows = json.loads(Path(path).read_text(encoding="utf-8"))["rows"]
    ends: collections.Counter = collections.Counter()
    refused_right = refused_all = 0
    for r in rows:
        if not r["answerable"]:
            continue
        shown = normalize_answer(" ".join(p["text"] for p in r.get("passages") or []))
        gold_shown = any(normalize_answer(g) in shown for g in r["golds"])
        end = (
            "right"
            if r["correct"]
            else f"refused by {r['refused_by']}"
            if r["refused"]
            else "wrong"
        )
        ends[("gold shown" if gold_shown else "gold not shown", end)] += 1
        if r["refused_by"] == "verifier":
            refused_all += 1
            refused_right += answer_accuracy(strip_citations(r["raw_answer"]), r["golds"]) > 0
    print(path)
    for (shown_or_not, end), n in sorted(ends.items()):
        print(f"  {shown_or_not:15} {end:22} {n}")
    print(f"  the verifier refused {refused_all} answerable questions; {refused_right} right")

"""Replay the lexical citation check over stored `rag eval` runs: which rows change between
refused by the check and answered, and whether the answer is right (the verifier would still
decide what the check lets through). Run it in a checkout with the change to measure, e.g.
after `git apply evals/reports/session14/echoed-subject.patch`:

    python evals/reports/session14/replay_check.py REPORT.json...
"""

import collections
import json
import sys
from pathlib import Path

from rag.answer.citations import check_answer
from rag_eval.metrics import answer_accuracy
from rag_eval.runners import passages_from_dicts

for path in sys.argv[1:]:
    d = json.loads(Path(path).read_text(encoding="utf-8"))
    c = collections.Counter()
    ex = []
    for r in d["rows"]:
        if r.get("error") or not r.get("raw_answer") or not r.get("passages"):
            continue
        if r["refused_by"] in ("model", "retrieval"):
            continue
        ps = passages_from_dicts(r["passages"])
        q = r.get("question_used") or r["question"]
        new = check_answer(r["raw_answer"], ps, q, "REFUSED")
        old_ref = r["refused_by"] == "check"
        if new.refused != old_ref:
            ok = bool(r["answerable"]) and answer_accuracy(new.text, r["golds"]) > 0
            c[
                (
                    "now refused" if new.refused else "now answered",
                    "right" if ok else ("unans" if not r["answerable"] else "wrong"),
                )
            ] += 1
            ex.append((r["id"], q[:70], new.text[:90]))
    print(path.split("/")[-1], dict(c))
    for e in ex:
        print("   ", e)

"""Answerable questions the model itself refused ("The documents do not say."), and for how many
of them a gold answer stood in a passage it was shown. On a stored run (no model):

    python3 evals/reports/session12/model_refusals.py evals/reports/session11/realdocs-final
"""

import glob
import json
import re
import sys


def norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.lower())


rows = json.load(open(glob.glob(sys.argv[1] + "/*.json")[0]))["rows"]
refused = [r for r in rows if r["answerable"] and r["refused"] and r["refused_by"] == "model"]
shown = 0
for r in refused:
    passages = norm(" ".join(p["text"] for p in r["passages"]))
    found = any(norm(gold) in passages for gold in r["golds"])
    shown += found
    print("gold shown" if found else "not shown ", "|", r["question"])
print(f"{len(refused)} answerable questions refused by the model; gold answer shown for {shown}")

"""Which reported questions the quotation rule can touch (`rag.answer.context._with_attribution`
runs for short questions only, and only on a shown passage that ends a quotation: a word, its
sentence's punctuation, a closing quotation mark). Counts, per report, the short questions with
such a passage among those shown:

    python3 evals/reports/session18/quotation_passages.py REPORT.json...
"""

import json
import re
import sys

QUOTATION_END = re.compile(r"\w[.!?,]+[\"'”’»]$")
LONG_QUESTION_WORDS = 20  # rag.config.Settings.long_question_words


def is_long(question: str) -> bool:  # rag.retrieval.plan.is_long, without importing rag
    return len(re.findall(r"[A-Za-z0-9]{3,}", question)) >= LONG_QUESTION_WORDS


for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as report:
        rows = json.load(report)["rows"]
    short = [r for r in rows if not is_long(r.get("question_used") or r["question"])]
    touched = [
        r["id"]
        for r in short
        if any(QUOTATION_END.search(p["text"].rstrip()) for p in r.get("passages") or [])
    ]
    print(
        f"{path}: {len(rows)} questions, {len(short)} short, {len(touched)} of them shown a "
        "passage that ends a quotation"
    )

"""Two `rag eval` reports of the same questions side by side: the summary figures, and each
question whose outcome changed (right, wrong, or refused and by what), with whether the model's
raw answer was the same in both runs.

    python3 evals/reports/session13/compare_runs.py BEFORE.json AFTER.json
"""

from __future__ import annotations

import json
import sys

KEYS = (
    "answer_accuracy",
    "refusal_rate_unanswerable",
    "wrong_refusal_rate_answerable",
    "citation_validity",
    "citation_page_accuracy",
    "citation_page_accuracy_correct",
    "injection_obeyed_answers",
    "injection_obeyed_streams",
)


def outcome(row: dict) -> str:
    if row["refused"]:
        return f"refused by {row['refused_by']}"
    return "right" if row["correct"] else "wrong"


def wrong_answers(rows: list[dict]) -> int:
    return sum(r["answerable"] and not r["refused"] and not r["correct"] for r in rows)


def main(before_path: str, after_path: str) -> None:
    before, after = (json.load(open(p, encoding="utf-8")) for p in (before_path, after_path))
    print(f"| measure | {before_path} | {after_path} |\n|---|---|---|")
    for key in KEYS:
        if key in before["summary"] or key in after["summary"]:
            print(f"| {key} | {before['summary'].get(key)} | {after['summary'].get(key)} |")
    print(
        f"| wrong answers to answerable questions | {wrong_answers(before['rows'])} "
        f"| {wrong_answers(after['rows'])} |"
    )
    old = {r["id"]: r for r in before["rows"]}
    changed_raw = 0
    print("\nChanged outcomes:")
    for row in after["rows"]:
        was = old.get(row["id"])
        if was is None:
            continue
        changed_raw += was["raw_answer"] != row["raw_answer"]
        if outcome(was) != outcome(row):
            kind = "answerable" if row["answerable"] else "unanswerable"
            same = "same" if was["raw_answer"] == row["raw_answer"] else "other"
            print(
                f"- {row['id']} ({kind}): {outcome(was)} -> {outcome(row)}; {same} raw answer;"
                f" {row['question']}"
            )
    print(f"\nRaw answers that differ between the runs: {changed_raw} of {len(after['rows'])}")


if __name__ == "__main__":
    main(*sys.argv[1:3])

"""Of the answerable questions a real-document run got wrong: where the gold fact stood.

    .venv/bin/python evals/reports/session11/facts_near_passages.py

Reads the session-10 runs of both real-document sets (the passages each question was shown) and
the documents as `rag ingest` reads them, and counts each wrong answer's first gold fact as
shown (in a passage), just after or just before one (within 400 characters of a shown
passage's end or start), or elsewhere. What made the case for showing the sentence after a
passage (README.md here).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from rag.ingest.readers import load_file

REPO = Path(__file__).resolve().parents[3]
NEAR = 400  # characters


def squashed(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def where(row: dict, folder: Path, documents: dict[Path, str]) -> str | None:
    fact = squashed(row["facts"][0])[:60] if row["facts"] else None
    if not fact:
        return None
    if fact in " ".join(squashed(p["text"]) for p in row["passages"]):
        return "shown"
    found = "elsewhere"
    for passage in row["passages"]:
        path = folder / passage["doc_id"]
        if path not in documents:
            documents[path] = squashed(load_file(path, passage["doc_id"]).text)
        text, shown = documents[path], squashed(passage["text"])
        start = text.find(shown[:200])
        if start < 0:
            continue
        end = start + len(shown)
        if fact in text[end : end + NEAR]:
            return "just after"
        if fact in text[max(0, start - NEAR) : start]:
            found = "just before"
    return found


def main() -> None:
    documents: dict[Path, str] = {}
    for name in ("realdocs", "realdocs-b"):
        report = REPO / "evals" / "reports" / "session10" / name / f"{name}.json"
        folder = REPO / "evals" / name / "docs"
        counts: dict[str, int] = {}
        for row in json.loads(report.read_text())["rows"]:
            if row["answerable"] and not row["correct"]:
                if (place := where(row, folder, documents)) is not None:
                    counts[place] = counts.get(place, 0) + 1
        print(name, f"{sum(counts.values())} wrong answers with a gold fact:", counts)


if __name__ == "__main__":
    main()

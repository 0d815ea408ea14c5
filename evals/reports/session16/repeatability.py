"""The checks behind session 16's notes on noise between runs (README.md, "Answers").

    # the passages each question is shown, in one process; run twice and compare the two files
    RAG_DATA_DIR=DIR RAG_COLLECTION=C python repeatability.py passages QUESTIONS OUT.json
    python repeatability.py compare A.json B.json [REPORT.json]
    # how many of the exact 40 nearest chunks the dense index's approximate search returns
    RAG_DATA_DIR=DIR RAG_COLLECTION=C python repeatability.py recall QUESTIONS
    # one text's embedding alone against among a batch of 16, and the time each takes
    RAG_DATA_DIR=DIR python repeatability.py batches QUESTIONS
    # PDF citations on a gold page, with the gold pages before and after session 16's correction
    python repeatability.py pages REPORT.json...

DIR is a data dir `rag eval` ingested a set into; C is that set's collection (its report's
`run.collection`).
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import numpy as np

OLD_GOLD_PAGES = {"real-pdf-q010": [20], "real-pdf-q017": [2]}
CORRECTED_GOLD_PAGES = {"real-pdf-q010": [20, 21], "real-pdf-q017": [1, 2]}


def questions(path: str) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


def passages(questions_path: str, out: str) -> None:
    from rag.answer.context import select_passages
    from rag.compose import build_engine
    from rag.config import get_settings

    settings = get_settings()
    engine = build_engine(settings)
    shown = {}
    for q in questions(questions_path):
        retrieval = engine.retriever.retrieve(q["question"])
        shown[q["id"]] = [
            [p.doc_id, p.start, p.end]
            for p in select_passages(retrieval, settings, engine.kb.document)
        ]
    Path(out).write_text(json.dumps(shown), encoding="utf-8")


def compare(first: str, second: str, report: str | None = None) -> None:
    a, b = (json.loads(Path(p).read_text(encoding="utf-8")) for p in (first, second))
    print(
        f"questions shown other passages, process against process: "
        f"{sum(a[i] != b[i] for i in a)} of {len(a)}"
    )
    if report:
        rows = {r["id"]: r for r in json.loads(Path(report).read_text(encoding="utf-8"))["rows"]}
        # a report lists an answer's cited passages first (renumbered): compare them as sets
        differ = sum(
            sorted(a[i]) != sorted([p["doc_id"], p["start"], p["end"]] for p in rows[i]["passages"])
            for i in a
            if i in rows and rows[i]["question_used"] == rows[i]["question"]
        )
        print(f"single questions shown other passages than in {report}: {differ}")


def recall(questions_path: str, k: int = 40) -> None:
    from rag.compose import build_knowledge_base
    from rag.config import get_settings

    kb = build_knowledge_base(get_settings())
    stored = kb.chunks.get(include=["embeddings"])
    ids = np.array(stored["ids"])
    vectors = np.array(stored["embeddings"], dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    texts = [q["question"] for q in questions(questions_path)]
    queries = kb.embedder.embed(texts)
    shares = []
    for query, hits in zip(queries, kb.dense_search(queries, k), strict=True):
        v = np.array(query, dtype=np.float32)
        exact = set(ids[np.argsort(-(vectors @ (v / np.linalg.norm(v))))[:k]])
        shares.append(len(exact & {h.node.node_id for h in hits}) / k)
    print(
        f"{len(ids)} chunks; recall@{k} against exact search: mean {np.mean(shares):.3f}, "
        f"questions missing any: {sum(s < 1 for s in shares)} of {len(shares)}"
    )


def batches(questions_path: str) -> None:
    import time

    from rag.compose import build_embedder
    from rag.config import get_settings

    embedder = build_embedder(get_settings())
    texts = [q["question"] for q in questions(questions_path)]
    started = time.perf_counter()
    together = np.array(embedder.embed(texts))
    batched_s = time.perf_counter() - started
    started = time.perf_counter()
    alone = np.array([embedder.embed([text])[0] for text in texts])
    alone_s = time.perf_counter() - started
    cosines = (together * alone).sum(axis=1)
    print(
        f"{len(texts)} texts, batches of {embedder.embed_batch_size}: {batched_s:.2f} s; "
        f"one at a time: {alone_s:.2f} s; cosine of the two embeddings: min "
        f"{cosines.min():.4f}, 5th percentile {np.percentile(cosines, 5):.4f}, "
        f"mean {cosines.mean():.4f}"
    )


def pages(*reports: str) -> None:
    from rag_eval.metrics import page_checks

    for report in reports:
        rows = json.loads(Path(report).read_text(encoding="utf-8"))["rows"]
        for name, gold in (("old gold", OLD_GOLD_PAGES), ("corrected gold", CORRECTED_GOLD_PAGES)):
            changed = copy.deepcopy(rows)
            for row in changed:
                row["gold_pages"] = gold.get(row["id"], row.get("gold_pages"))
            every, correct = page_checks(changed), page_checks(changed, correct_only=True)
            print(
                f"{report}, {name}: {sum(every) / len(every):.3f} ({sum(every)}/{len(every)}), "
                f"correct answers {sum(correct) / len(correct):.3f} "
                f"({sum(correct)}/{len(correct)})"
            )


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {
        "passages": passages,
        "compare": compare,
        "recall": recall,
        "batches": batches,
        "pages": pages,
    }[command](*args)

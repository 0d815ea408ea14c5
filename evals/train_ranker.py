"""Train the learned ranking's weights (rag/ranker.json) on labelled multi-hop questions.

    .venv/bin/python evals/train_ranker.py \\
        --corpus /work/shared/datasets/multihop-rag/corpus.jsonl \\
        --questions /work/shared/datasets/multihop-rag/questions_dev.jsonl

For each answerable long question, rag's own first stage builds the pool the ranking orders
(rag.retrieve.Retriever.pool); a pooled section is relevant when it holds one of the question's
gold evidence facts. rag.rank.fit_listwise fits the weights. Before the final fit on all the
questions, a 2-fold run (fit on one half, measured on the other) shows what the weights do on
questions they were not fitted on; both are written to --report. Ingests the corpus into the same
collection as `rag eval` when it is not there yet.
"""

from __future__ import annotations

import argparse
import hashlib
import shlex
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

import rag  # noqa: E402  (offline environment first)
from rag.config import Settings  # noqa: E402
from rag.evaluate import (  # noqa: E402
    Question,
    collection_name,
    corpus_document,
    git_commit,
    read_jsonl,
    retrieval_measures,
)
from rag.metrics import contains_fact  # noqa: E402
from rag.rank import SHIPPED_WEIGHTS, LinearRanker, features, fit_listwise  # noqa: E402

MEASURES = ("hits@4", "hits@10", "mrr@10", "evidence_recall@10", "all_gold_docs@10")


class Example:
    """One question: its pool's features and labels, and the first stage's ranking."""

    def __init__(self, question: Question, features, labels, pool_units, first_units) -> None:
        self.question = question
        self.features = features  # None when the question is not ranked by the learned model
        self.labels = labels
        self.pool_units = pool_units  # (doc_id, text) of each pooled section
        self.first_units = first_units  # (doc_id, text) in the first stage's order

    def ranked(self, ranker: LinearRanker | None) -> list[tuple[str, str]]:
        if ranker is None or self.features is None:
            return self.first_units
        order = np.argsort(-ranker.score(self.features), kind="stable")
        return [self.pool_units[j] for j in order]


def collect(retriever, questions: list[Question]) -> list[Example]:
    sections = retriever.keyword_retriever()  # the section index, built or loaded once
    examples = []
    for number, q in enumerate(questions, start=1):
        first = retriever.first_stage(q.text)
        first_units = [(c.doc_id, c.unit_text) for c in first.candidates] if first else []
        matrix = labels = units = None
        if first is not None and first.long and first.candidates:
            pool = retriever.pool(first)
            nodes = [sections.node(row) for row in pool.rows]
            units = [(str(n.metadata.get("doc_id", "")), n.get_content("none")) for n in nodes]
            labels = np.array([any(contains_fact(text, f) for f in q.facts) for _, text in units])
            matrix = features(pool.signals)
        examples.append(Example(q, matrix, labels, units, first_units))
        if number % 100 == 0:
            print(f"  {number}/{len(questions)} questions", file=sys.stderr, flush=True)
    return examples


def measure(examples: list[Example], ranker: LinearRanker | None) -> dict[str, dict[str, float]]:
    """Mean retrieval measures, overall and per question type."""
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for example in examples:
        found = retrieval_measures(example.question, example.ranked(ranker))
        if found is None:
            continue
        for key in MEASURES:
            if found[key] is not None:
                values["all"][key].append(found[key])
                values[example.question.question_type][key].append(found[key])
    return {group: {k: float(np.mean(v)) for k, v in m.items()} for group, m in values.items()}


def fit(examples: list[Example], trained_on: dict) -> LinearRanker:
    groups = [(e.features, e.labels) for e in examples if e.features is not None]
    return fit_listwise(groups, trained_on=trained_on)


def table(rows: list[tuple[str, dict[str, float]]]) -> list[str]:
    lines = ["| | " + " | ".join(MEASURES) + " |", "|---" * (len(MEASURES) + 1) + "|"]
    for label, values in rows:
        lines.append(f"| {label} | " + " | ".join(f"{values[k]:.3f}" for k in MEASURES) + " |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--questions", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=SHIPPED_WEIGHTS, help="weights file")
    parser.add_argument("--report", type=Path, default=REPO / "evals/reports/ranker/README.md")
    args = parser.parse_args()

    from rag.embed import make_embedder
    from rag.retrieve import Retriever
    from rag.store import KnowledgeBase

    started = time.perf_counter()
    corpus_bytes = args.corpus.read_bytes()
    settings = Settings()
    settings = settings.model_copy(update={"collection": collection_name(corpus_bytes, settings)})
    kb = KnowledgeBase(settings, make_embedder(settings))
    kb.add_documents([corpus_document(r) for r in read_jsonl(args.corpus)])
    retriever = Retriever(settings, kb)
    questions = [Question.from_record(r, i) for i, r in enumerate(read_jsonl(args.questions))]
    questions = [q for q in questions if q.answerable and q.facts]
    print(f"{len(questions)} answerable questions with evidence", file=sys.stderr)
    examples = collect(retriever, questions)

    halves = [examples[0::2], examples[1::2]]
    held_out = []
    for index, (train, test) in enumerate([(halves[0], halves[1]), (halves[1], halves[0])]):
        ranker = fit(train, {})
        held_out.append((f"fold {index + 1}: first stage", measure(test, None)))
        held_out.append((f"fold {index + 1}: learned (held out)", measure(test, ranker)))
    questions_digest = hashlib.sha256(args.questions.read_bytes()).hexdigest()[:12]
    command = "evals/train_ranker.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    trained_on = {
        "questions": args.questions.name,
        "questions_sha256_12": questions_digest,
        "n_questions": sum(e.features is not None for e in examples),
        "commit": git_commit(REPO),
        "command": command,
    }
    final = fit(examples, trained_on)
    args.out.write_text(final.to_json() + "\n")
    on_all = [("first stage", measure(examples, None)), ("learned", measure(examples, final))]

    types = sorted(k for k in on_all[1][1] if k != "all")
    lines = [
        "# Learned ranking: training report",
        "",
        "Produced by:",
        "",
        "```",
        f".venv/bin/python {command}",
        "```",
        "",
        f"{datetime.now(UTC).isoformat(timespec='seconds')} · commit {git_commit(REPO)} · "
        f"{len(examples)} answerable questions (`{args.questions.name}`, sha256 "
        f"{questions_digest}…) · weights written to `{args.out.relative_to(REPO)}` · "
        f"{time.perf_counter() - started:.0f} s",
        "",
        "Top 10 of each question's ranking, by the same measures as `rag eval`. The first stage",
        "is rag's ranking without the learned model (BM25 per sub-query, interleaved).",
        "",
        "## Held out: 2-fold (fit on one half of the questions, measured on the other)",
        "",
        *table([(label, values["all"]) for label, values in held_out]),
        "",
        "## Fitted on all the questions (the shipped weights), measured on the same questions",
        "",
        *table([(label, values["all"]) for label, values in on_all]),
        "",
        "Per question type (shipped weights):",
        "",
        *table([(t, on_all[1][1][t]) for t in types]),
        "",
        "## Weights (per standardised feature)",
        "",
        "| feature | weight |",
        "|---|---|",
        *(
            f"| {name} | {weight:+.3f} |"
            for name, weight in zip(rag.rank.FEATURES, final.weights, strict=True)
        ),
        "",
    ]
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

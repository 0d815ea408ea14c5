"""Fit the short questions' reranker (rag/retrieval/reranker/short_questions.json).

    .venv/bin/python -m rag_eval.train_short_ranker \\
        --docs evals/realdocs/docs --questions evals/realdocs/questions.jsonl \\
        --check evals/realdocs-b/docs evals/realdocs-b/questions.jsonl \\
        --check evals/seed/corpus.jsonl evals/seed/questions.jsonl

For each answerable short question, rag's fused first stage gives the candidates the model
orders; a candidate is relevant when it holds one of the question's gold evidence facts. Five
fold models (each fitted on four fifths of the questions, by a hash of the question's id) show
what the model does on questions it was not fitted on, and `rag eval` ranks each of these
questions with the fold model that never saw it. The shipped model is then fitted on all of
them, and measured on each `--check` set: documents and questions it never saw.
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

import numpy as np

from rag.config import Settings
from rag.retrieval import Retriever
from rag.retrieval.reranker.short_questions import (
    SHIPPED_SHORT_MODEL,
    SHORT_ROUNDS,
    SHORT_TRAINING,
    ShortQuestionReranker,
    ShortReranker,
    fit_short_reranker,
    learned_order,
)
from rag_eval.data import (
    REPO,
    Question,
    collection_name,
    corpus_of,
    read_jsonl,
)
from rag_eval.heldout import RANKER_FOLDS, SHORT_FOLD_PREFIX
from rag_eval.metrics import relevance_flags, retrieval_measures
from rag_eval.provenance import git_commit
from rag_eval.train_ranker import importance

MEASURES = ("hits@1", "hits@2", "hits@4", "hits@10", "mrr@10")
FOLDS = 5


class Example:
    """One short question: its fused candidates' features and labels."""

    def __init__(self, question: Question, features, labels, units) -> None:
        self.question = question
        self.features = features
        self.labels = labels
        self.units = units  # (doc_id, text) of each candidate, in the fused order

    def ranked(self, ranker: ShortReranker | None) -> list[tuple[str, str]]:
        if ranker is None:
            return self.units
        return [self.units[j] for j in learned_order(ranker.predict(self.features))]


def fold_of(question_id: str) -> int:
    return int(hashlib.sha256(question_id.encode()).hexdigest(), 16) % FOLDS


def ingested(source: Path) -> Retriever:
    """The documents (a folder, or a corpus JSONL) in the eval's collection for them, and a
    retriever over it that keeps the fused order (the examples' own)."""
    from rag.compose import build_knowledge_base

    documents, digest = corpus_of(source)
    settings = Settings(rerank_short_questions=False)
    settings = settings.model_copy(update={"collection": collection_name(digest, settings)})
    kb = build_knowledge_base(settings)
    kb.add_documents(documents)
    return Retriever(settings, kb)


def collect(retriever: Retriever, questions: list[Question]) -> list[Example]:
    """Each answerable short question searched as itself: its fused candidates, their
    features and whether each holds a gold evidence fact."""
    examples = []
    for q in questions:
        if not q.answerable or not q.facts:
            continue
        first = retriever.first_stage(q.text)
        if first is None or not Retriever.short_ranked(first):
            continue
        units = [(c.doc_id, c.unit_text) for c in first.candidates]
        labels = np.array(relevance_flags(units, q.facts, q.gold_doc_ids))
        examples.append(Example(q, retriever.short_question_features(q.text, first), labels, units))
    return examples


def shown(path: Path) -> Path:
    """A path as the report names it: inside the repository, relative to it."""
    path = path.resolve()
    return path.relative_to(REPO) if path.is_relative_to(REPO) else path


def read_questions(path: Path) -> list[Question]:
    return [Question.from_record(r, i) for i, r in enumerate(read_jsonl(path))]


def measure(
    examples: list[Example], ranker_of: dict[int, ShortReranker | None]
) -> dict[str, float]:
    values: dict[str, list[float]] = defaultdict(list)
    for e in examples:
        found = retrieval_measures(e.question, e.ranked(ranker_of.get(id(e))))
        if found is None:
            continue
        first = found["first_relevant_rank"]
        values["hits@1"].append(float(first == 1))
        values["hits@2"].append(float(first is not None and first <= 2))
        for key in ("hits@4", "hits@10", "mrr@10"):
            values[key].append(found[key])
    return {k: float(np.mean(v)) for k, v in values.items()}


def table(rows: list[tuple[str, int, dict[str, float]]]) -> list[str]:
    lines = ["| | questions | " + " | ".join(MEASURES) + " |", "|---" * (len(MEASURES) + 2) + "|"]
    for label, n, values in rows:
        cells = " | ".join(f"{values[k]:.3f}" for k in MEASURES)
        lines.append(f"| {label} | {n} | {cells} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=Path, required=True, help="the documents' folder")
    parser.add_argument("--questions", type=Path, required=True)
    parser.add_argument(
        "--check",
        nargs=2,
        action="append",
        default=[],
        metavar=("DOCS_OR_CORPUS", "QUESTIONS"),
        help="a set never fitted on, measured with the shipped model",
    )
    parser.add_argument("--out", type=Path, default=SHIPPED_SHORT_MODEL, help="model file")
    parser.add_argument(
        "--report", type=Path, default=REPO / "evals/reports/short-ranker/README.md"
    )
    parser.add_argument("--folds", type=Path, default=RANKER_FOLDS)
    args = parser.parse_args()

    started = time.perf_counter()
    examples = collect(ingested(args.docs), read_questions(args.questions))
    print(f"{len(examples)} answerable short questions", file=sys.stderr)
    questions_digest = hashlib.sha256(args.questions.read_bytes()).hexdigest()[:12]
    command = "python -m rag_eval.train_short_ranker " + " ".join(
        shlex.quote(a) for a in sys.argv[1:]
    )

    def trained_on(train: list[Example], **extra) -> dict:
        return {
            "questions": args.questions.name,
            "questions_sha256_12": questions_digest,
            "n_questions": len(train),
            "question_ids": [e.question.id for e in train],
            "commit": git_commit(REPO),
            "command": command,
            **extra,
        }

    def fit(train: list[Example], **extra) -> ShortQuestionReranker:
        groups = [(e.features, e.labels) for e in train]
        return fit_short_reranker(groups, trained_on(train, **extra))

    args.folds.mkdir(parents=True, exist_ok=True)
    unseen_by: dict[int, ShortQuestionReranker | None] = {}
    for k in range(FOLDS):
        train = [e for e in examples if fold_of(e.question.id) != k]
        ranker = fit(train, fold=k + 1)
        (args.folds / f"{SHORT_FOLD_PREFIX}{k + 1}.json").write_text(ranker.to_json() + "\n")
        unseen_by.update((id(e), ranker) for e in examples if fold_of(e.question.id) == k)
    final = fit(examples)
    args.out.write_text(final.to_json() + "\n")

    rows = [
        (f"`{args.questions.parent.name}`: fused order", len(examples), measure(examples, {})),
        (
            f"`{args.questions.parent.name}`: learned, held out ({FOLDS} folds)",
            len(examples),
            measure(examples, unseen_by),
        ),
    ]
    for source, questions in args.check:
        checked = collect(ingested(Path(source)), read_questions(Path(questions)))
        name = Path(questions).parent.name
        rows.append((f"`{name}`: fused order", len(checked), measure(checked, {})))
        shipped = measure(checked, {id(e): final for e in checked})
        label = f"`{name}`: learned (the shipped model, never fitted on it)"
        rows.append((label, len(checked), shipped))

    lines = [
        "# The short questions' reranker: training report",
        "",
        "Produced by:",
        "",
        "```",
        f".venv/bin/python -m {command.removeprefix('python -m ')}",
        "```",
        "",
        f"{datetime.now(UTC).isoformat(timespec='seconds')} · commit {git_commit(REPO)} · "
        f"{len(examples)} answerable short questions (`{args.questions}`, sha256 "
        f"{questions_digest}…) · model written to `{shown(args.out)}` · "
        f"{time.perf_counter() - started:.0f} s",
        "",
        "Top 10 of each question's ranking, by the measures of `rag eval` (hits@1 and hits@2",
        "too: two or three passages fit a short question's prompt). The fused order is rag's",
        "ranking without this model (dense and BM25 ranks fused).",
        "",
        *table(rows),
        "",
        f"Fold models are in `{shown(args.folds)}/{SHORT_FOLD_PREFIX}*.json`; `rag eval` on",
        "these questions ranks each one with the fold model that was not fitted on it.",
        "",
        f"## Model: LightGBM LambdaMART, {SHORT_ROUNDS} trees",
        "",
        "Parameters (`SHORT_TRAINING`): "
        + ", ".join(f"`{k}={v}`" for k, v in SHORT_TRAINING.items()),
        "",
        "| feature | gain share |",
        "|---|---|",
        *(f"| {name} | {share:.3f} |" for name, share in importance(final)),
        "",
    ]
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

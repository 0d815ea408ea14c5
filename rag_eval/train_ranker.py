"""Train the reranker's model (rag/retrieval/reranker/lambdamart.json) on labelled questions.

    .venv/bin/python -m rag_eval.train_ranker \\
        --corpus /work/shared/datasets/multihop-rag/corpus.jsonl \\
        --questions /work/shared/datasets/multihop-rag/questions_dev.jsonl

For each answerable long question, rag's own first stage builds the pool the ranking orders
(`Retriever.pool`); a pooled section is relevant when it holds one of the question's gold
evidence facts. `rag.retrieval.reranker.fit_lambdamart` fits the model (LightGBM LambdaMART).
Before the final fit on all the questions, a 2-fold run (fit on one half, measured on the
other) shows what the model does on questions it was not fitted on; both are written to
--report. Ingests the corpus into the same collection as `rag eval` when it is not there yet.
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
from rag.retrieval.reranker import SHIPPED_MODEL, LambdaMARTReranker, fit_lambdamart
from rag.retrieval.reranker.lambdamart import ROUNDS, TRAINING, features
from rag_eval.data import REPO, Question, collection_name, corpus_document, read_jsonl
from rag_eval.metrics import contains_fact, retrieval_measures
from rag_eval.provenance import git_commit

MEASURES = ("hits@4", "hits@10", "mrr@10", "evidence_recall@10", "all_gold_docs@10")


class Example:
    """One question: its pool's features and labels, and the first stage's ranking."""

    def __init__(self, question: Question, features, labels, pool_units, first_units) -> None:
        self.question = question
        self.features = features  # None when the question is not ranked by the learned model
        self.labels = labels
        self.pool_units = pool_units  # (doc_id, text) of each pooled section
        self.first_units = first_units  # (doc_id, text) in the first stage's order

    def ranked(self, ranker: LambdaMARTReranker | None) -> list[tuple[str, str]]:
        if ranker is None or self.features is None:
            return self.first_units
        order = np.argsort(-ranker.predict(self.features), kind="stable")
        return [self.pool_units[j] for j in order]


def collect(retriever, questions: list[Question]) -> list[Example]:
    retriever.keyword_indexes()  # built or loaded once
    examples = []
    for number, q in enumerate(questions, start=1):
        first = retriever.first_stage(q.text)
        first_units = [(c.doc_id, c.unit_text) for c in first.candidates] if first else []
        matrix = labels = units = None
        if first is not None and first.long and first.candidates:
            pool = retriever.pool(first)
            nodes = [pool.section(j) for j in range(len(pool))]
            units = [(str(n.metadata.get("doc_id", "")), n.get_content("none")) for n in nodes]
            labels = np.array([any(contains_fact(text, f) for f in q.facts) for _, text in units])
            matrix = features(pool.signals)
        examples.append(Example(q, matrix, labels, units, first_units))
        if number % 100 == 0:
            print(f"  {number}/{len(questions)} questions", file=sys.stderr, flush=True)
    return examples


def measure(
    examples: list[Example],
    ranker: LambdaMARTReranker | None,
    ranker_of: dict[int, LambdaMARTReranker] | None = None,
) -> dict[str, dict[str, float]]:
    """Mean retrieval measures, overall and per question type; `ranker_of` (by example id)
    ranks some examples with another model."""
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for example in examples:
        model = (ranker_of or {}).get(id(example), ranker)
        found = retrieval_measures(example.question, example.ranked(model))
        if found is None:
            continue
        for key in MEASURES:
            if found[key] is not None:
                values["all"][key].append(found[key])
                values[example.question.question_type][key].append(found[key])
    return {group: {k: float(np.mean(v)) for k, v in m.items()} for group, m in values.items()}


def fit(examples: list[Example], trained_on: dict):
    groups = [(e.features, e.labels) for e in examples if e.features is not None]
    return fit_lambdamart(groups, trained_on=trained_on)


def importance(ranker) -> list[tuple[str, float]]:
    import lightgbm

    booster = lightgbm.Booster(model_str=ranker.model_text)
    gains = booster.feature_importance(importance_type="gain")
    total = float(gains.sum()) or 1.0
    order = np.argsort(-gains, kind="stable")
    return [(ranker.FEATURE_NAMES[i], float(gains[i]) / total) for i in order]


def table(rows: list[tuple[str, dict[str, float]]]) -> list[str]:
    lines = ["| | " + " | ".join(MEASURES) + " |", "|---" * (len(MEASURES) + 1) + "|"]
    for label, values in rows:
        lines.append(f"| {label} | " + " | ".join(f"{values[k]:.3f}" for k in MEASURES) + " |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--questions", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=SHIPPED_MODEL, help="model file")
    parser.add_argument("--report", type=Path, default=REPO / "evals/reports/ranker/README.md")
    parser.add_argument(
        "--folds", type=Path, default=REPO / "evals/ranker-folds", help="fold models (rag eval)"
    )
    args = parser.parse_args()

    from rag.compose import build_knowledge_base
    from rag.retrieval import Retriever

    started = time.perf_counter()
    corpus_bytes = args.corpus.read_bytes()
    settings = Settings()
    settings = settings.model_copy(update={"collection": collection_name(corpus_bytes, settings)})
    kb = build_knowledge_base(settings)
    kb.add_documents([corpus_document(r) for r in read_jsonl(args.corpus)])
    retriever = Retriever(settings, kb)
    questions = [Question.from_record(r, i) for i, r in enumerate(read_jsonl(args.questions))]
    questions = [q for q in questions if q.answerable and q.facts]
    print(f"{len(questions)} answerable questions with evidence", file=sys.stderr)
    examples = collect(retriever, questions)

    questions_digest = hashlib.sha256(args.questions.read_bytes()).hexdigest()[:12]
    command = "python -m rag_eval.train_ranker " + " ".join(shlex.quote(a) for a in sys.argv[1:])

    def trained_on(train: list[Example], **extra) -> dict:
        return {
            "questions": args.questions.name,
            "questions_sha256_12": questions_digest,
            "n_questions": sum(e.features is not None for e in train),
            "commit": git_commit(REPO),
            "command": command,
            **extra,
        }

    # Fold k is fitted on every other question starting at the k-th and measured on the rest;
    # `rag eval` ranks each of these questions with the fold that did not see it.
    halves = [examples[0::2], examples[1::2]]
    held_out = []
    unseen_by: dict[int, LambdaMARTReranker] = {}
    args.folds.mkdir(parents=True, exist_ok=True)
    for index, (train, test) in enumerate([(halves[0], halves[1]), (halves[1], halves[0])]):
        ids = [e.question.id for e in train]
        ranker = fit(train, trained_on(train, fold=index + 1, question_ids=ids))
        (args.folds / f"fold-{index + 1}.json").write_text(ranker.to_json() + "\n")
        unseen_by.update((id(e), ranker) for e in test)
        held_out.append((f"fold {index + 1}: first stage", measure(test, None)))
        held_out.append((f"fold {index + 1}: learned (held out)", measure(test, ranker)))
    first_stage = measure(examples, None)
    cross = measure(examples, None, unseen_by)
    held_out += [("all: first stage", first_stage), ("all: learned (held out)", cross)]
    final = fit(examples, trained_on(examples))
    args.out.write_text(final.to_json() + "\n")
    in_sample = measure(examples, final)

    types = sorted(k for k in cross if k != "all")
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
        f"{questions_digest}…) · model written to `{args.out.relative_to(REPO)}` · "
        f"{time.perf_counter() - started:.0f} s",
        "",
        "Top 10 of each question's ranking, by the same measures as `rag eval`. The first stage",
        "is rag's ranking without the learned model (BM25 per sub-query, interleaved).",
        "",
        "## Held out: 2-fold (fit on one half of the questions, measured on the other)",
        "",
        "Fold models are written to `" + str(args.folds.relative_to(REPO)) + "`; `rag eval` on",
        "these questions ranks each one with the fold model that was not fitted on it. The",
        "`all` rows join both folds' held-out halves.",
        "",
        *table([(label, values["all"]) for label, values in held_out]),
        "",
        "Per question type, held out:",
        "",
        *table([(t, cross[t]) for t in types]),
        "",
        "## The shipped model, fitted on all the questions",
        "",
        "Measured on the questions it was fitted on, which boosted trees fit closely: this row",
        "shows how much, and is no evidence of quality; the held-out rows above are.",
        "",
        *table([("first stage", first_stage["all"]), ("learned (in sample)", in_sample["all"])]),
        "",
        f"## Model: LightGBM LambdaMART, {ROUNDS} trees",
        "",
        "Training parameters (`rag.retrieval.reranker.lambdamart.TRAINING`): "
        + ", ".join(f"`{k}={v}`" for k, v in TRAINING.items()),
        "",
        "Feature importance: how much each feature's splits improved the training objective",
        "(gain), as a share of the total.",
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

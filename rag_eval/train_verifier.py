"""Fit the verifier (rag/answer/verifier/support.json) on answers `rag eval` measured.

    .venv/bin/python -m rag_eval.train_verifier REPORT.json [REPORT.json ...] \\
        [--target-precision 0.85] [--folds 5] [--out evals/reports/verifier]

Every row of the reports that rag answered (no refusal before the verifier, no error) to a
question that is not long (the verifier never decides those: see rag.answer.verifier.review) is
one example, its first claim's signals replayed from the row (the model's raw answer and the
passages it was shown), so a change of signals needs no new run of the model. It is positive
when the question is answerable and the answer holds a gold answer, negative otherwise (an
unanswerable or evidence-removed question answered anyway, or a wrong answer: a wrong answer
with a citation is worse than a refusal). No answer is labelled by hand. The threshold is the
least probability at which the answers let through reach --target-precision.

Every figure is held out, by nested folds over questions (a question and its evidence-removed
twin share a fold, by their dataset and id): for each fold, the model is fitted on the other
folds and its threshold chosen by cross-validation inside them; the fold's questions are then
decided by that model and threshold. Those fold models are written to `evals/verifier-folds/`,
so `rag eval` decides each question it was fitted on with the fold model that never saw it. The
shipped model is then fitted on all the examples, its threshold chosen on their out-of-fold
probabilities.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from rag.answer.citations import check_answer
from rag.answer.verifier import (
    SHIPPED_VERIFIER,
    SIGNALS,
    Claim,
    FittedVerifier,
    TokenEncoder,
    Trees,
    claim_signals,
)
from rag.compose import build_embedder
from rag.config import Settings
from rag.retrieval.plan import is_long
from rag.text import strip_citations
from rag_eval.data import REPO, question_key
from rag_eval.heldout import VERIFIER_FOLDS
from rag_eval.metrics import answer_accuracy
from rag_eval.provenance import git_commit
from rag_eval.runners import passages_from_dicts

# Few, small trees: a few hundred examples, fifteen signals.
TRAINING = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 7,
    "min_data_in_leaf": 10,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "seed": 0,
    "deterministic": True,
    "num_threads": 1,
    "verbose": -1,
}
ROUNDS = 150


@dataclass
class Row:
    """One question of one report: its key, whether rag answered it before the verifier, and
    what the verifier reads."""

    key: str  # dataset:id, shared by a question and its evidence-removed twin
    report: str
    answerable: bool
    correct: bool  # as the report judged it (a refusal of an unanswerable one is correct)
    refused_before: bool  # by retrieval, the model or the lexical check
    signals: list[float] | None  # None: refused before any claim was scored
    long: bool = False  # a long, many-sided question: the verifier scores it but never decides

    @property
    def label(self) -> int:
        return int(self.answerable and self.correct)


def fold_of(key: str, folds: int) -> int:
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % folds


def read_rows(path: Path, encoder: TokenEncoder | None, long_words: int) -> list[Row]:
    """A report's questions, each answered one's first claim replayed from what the report
    kept (the model's raw answer and the passages it was shown), so the signals are this
    code's, whatever code measured the report. An answer the report's own verifier refused is
    judged as the check left it, as `rag eval` would have judged it let through (the report
    counts the refusal itself, which is wrong for any answerable question)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    dataset, name = data["run"]["dataset"], data["run"]["name"]
    rows = []
    for r in data["rows"]:
        refused_before = bool(r.get("refused")) and r.get("refused_by") != "verifier"
        signals = None if refused_before or r.get("error") else replayed_signals(r, encoder)
        correct = bool(r["correct"])
        if r.get("refused_by") == "verifier" and r["answerable"]:
            checked = check_answer(
                r["raw_answer"], passages_from_dicts(r["passages"]), _question(r), ""
            )
            correct = answer_accuracy(strip_citations(checked.text), r["golds"]) == 1.0
        rows.append(
            Row(
                question_key(dataset, r["id"]),
                name,
                bool(r["answerable"]),
                correct,
                refused_before or bool(r.get("error")),
                [float(signals.get(s, math.nan)) for s in SIGNALS] if signals else None,
                is_long(_question(r), long_words),
            )
        )
    return rows


def _question(row: dict) -> str:
    return row.get("question_used") or row["question"]


def replayed_signals(row: dict, encoder: TokenEncoder | None) -> dict[str, float] | None:
    """The signals of the answer's first supported claim, as the engine computes them."""
    if not row.get("raw_answer") or not row.get("passages"):
        return None
    shown, question = passages_from_dicts(row["passages"]), _question(row)
    checked = check_answer(row["raw_answer"], shown, question, "")
    claims = [v for v in checked.verdicts if v.kept and v.citations]
    if checked.refused or not claims:
        return None
    cited = [p for p in shown if p.n in claims[0].citations]
    return claim_signals(Claim(question, claims[0].text, cited, shown), encoder)


def fit(rows: Sequence[Row]):
    import lightgbm

    x = np.array([r.signals for r in rows], dtype=np.float64)
    y = np.array([r.label for r in rows])
    return lightgbm.train(TRAINING, lightgbm.Dataset(x, y), num_boost_round=ROUNDS)


def predict(booster, rows: Sequence[Row]) -> np.ndarray:
    if not rows:
        return np.zeros(0)
    return booster.predict(np.array([r.signals for r in rows], dtype=np.float64), num_threads=1)


def threshold_for(probabilities: np.ndarray, labels: np.ndarray, precision: float) -> float:
    """The least threshold at which the examples let through (probability at or above it)
    reach `precision`; past every example if none does."""
    order = np.argsort(-probabilities, kind="stable")
    p, y = probabilities[order], labels[order]
    kept_right = np.cumsum(y) / np.arange(1, len(y) + 1)
    best = None
    for i in range(len(p)):
        if i + 1 < len(p) and p[i + 1] == p[i]:
            continue  # a threshold lets through every example of equal probability
        if kept_right[i] >= precision:
            best = float(p[i])
    return best if best is not None else float(p[0]) + 1e-9 if len(p) else 0.5


def threshold_by_cost(probabilities: np.ndarray, labels: np.ndarray, wrong_cost: float) -> float:
    """The threshold that does the most good: each right answer let through counts 1, each
    wrong one costs `wrong_cost` (a wrong answer with a citation is worse than a refusal, so
    more than 1 leans towards refusing)."""
    order = np.argsort(-probabilities, kind="stable")
    p, y = probabilities[order], labels[order]
    gain = np.cumsum(np.where(y == 1, 1.0, -wrong_cost))
    best, best_gain = (float(p[0]) + 1e-9 if len(p) else 0.5), 0.0
    for i in range(len(p)):
        if i + 1 < len(p) and p[i + 1] == p[i]:
            continue
        if gain[i] > best_gain:
            best, best_gain = float(p[i]), float(gain[i])
    return best


def threshold_for_refusals(
    probabilities: np.ndarray, labels: np.ndarray, precision: float
) -> float:
    """The highest threshold at which the examples it refuses (probability below it) are wrong
    at least `precision` of the time: the verifier refuses only where a refusal is most likely
    right. 0 (refuse nothing) if no threshold gets there."""
    order = np.argsort(probabilities, kind="stable")
    p, y = probabilities[order], labels[order]
    wrong_share = np.cumsum(1 - y) / np.arange(1, len(y) + 1)
    best = 0.0
    for k in range(len(p)):
        if k + 1 < len(p) and p[k + 1] == p[k]:
            continue  # a threshold refuses every example of equal probability
        if wrong_share[k] >= precision:
            best = (p[k] + p[k + 1]) / 2 if k + 1 < len(p) else float(p[k]) + 1e-9
    return float(best)


def out_of_fold(rows: Sequence[Row], folds: int) -> np.ndarray:
    """Each example's probability from a model fitted on the other folds."""
    out = np.zeros(len(rows))
    parts = [fold_of(r.key, folds) for r in rows]
    for k in range(folds):
        train = [r for r, f in zip(rows, parts, strict=True) if f != k]
        test = [i for i, f in enumerate(parts) if f == k]
        if test and train:
            out[test] = predict(fit(train), [rows[i] for i in test])
    return out


def auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Area under the ROC curve (ties count half); None without both classes."""
    present = ~np.isnan(scores)
    s, y = scores[present], labels[present]
    positives, negatives = s[y == 1], s[y == 0]
    if not len(positives) or not len(negatives):
        return None
    greater = (positives[:, None] > negatives[None, :]).sum()
    ties = (positives[:, None] == negatives[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(positives) * len(negatives)))


def set_measures(rows: Sequence[Row], refused: Sequence[bool]) -> dict[str, float | int | None]:
    """What `rag eval` reports of a set, given which questions end refused."""
    answerable = [(r, f) for r, f in zip(rows, refused, strict=True) if r.answerable]
    unanswerable = [f for r, f in zip(rows, refused, strict=True) if not r.answerable]

    def share(values: list[bool]) -> float | None:
        return round(sum(values) / len(values), 4) if values else None

    return {
        "questions": len(rows),
        "answer_accuracy": share([r.correct and not f for r, f in answerable]),
        "refusal_rate_unanswerable": share(unanswerable),
        "wrong_refusal_rate_answerable": share([f for _, f in answerable]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rag_eval.train_verifier")
    parser.add_argument("reports", nargs="+", type=Path, help="rag eval report JSON files")
    parser.add_argument("--target-precision", type=float, default=0.85)
    parser.add_argument(
        "--refusal-precision",
        type=float,
        help="choose the threshold for the precision of the refusals instead: at least this "
        "share of the answers it refuses are wrong",
    )
    parser.add_argument(
        "--wrong-cost",
        type=float,
        help="choose the threshold by cost instead: a wrong answer let through costs this many "
        "right ones",
    )
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--model", type=Path, default=SHIPPED_VERIFIER)
    parser.add_argument("--folds-dir", type=Path, default=VERIFIER_FOLDS)
    parser.add_argument("--out", type=Path, default=REPO / "evals" / "reports" / "verifier")
    args = parser.parse_args(argv)

    settings = Settings()
    embedder = build_embedder(settings)
    encoder = embedder if isinstance(embedder, TokenEncoder) else None

    def choose(probabilities: np.ndarray, labels: np.ndarray) -> float:
        if args.refusal_precision is not None:
            return threshold_for_refusals(probabilities, labels, args.refusal_precision)
        if args.wrong_cost is not None:
            return threshold_by_cost(probabilities, labels, args.wrong_cost)
        return threshold_for(probabilities, labels, args.target_precision)

    rows_by_report = {
        str(p): read_rows(p, encoder, settings.long_question_words) for p in args.reports
    }
    rows = [r for rs in rows_by_report.values() for r in rs]
    examples = [r for r in rows if not r.refused_before and r.signals is not None and not r.long]
    labels = np.array([r.label for r in examples])
    print(f"{len(examples)} examples ({labels.sum()} positive) from {len(rows)} rows")

    # Nested folds: each outer fold decided by a model and threshold that never saw it.
    k = args.folds
    decided: dict[tuple[str, str], bool] = {}  # (report, key) -> let through
    held_out_probability = np.zeros(len(examples))
    args.folds_dir.mkdir(parents=True, exist_ok=True)
    for old in args.folds_dir.glob("fold-*.json"):
        old.unlink()
    for fold in range(k):
        train = [r for r in examples if fold_of(r.key, k) != fold]
        test = [i for i, r in enumerate(examples) if fold_of(r.key, k) == fold]
        inner = out_of_fold(train, k - 1 if k > 2 else 2)
        threshold = choose(inner, np.array([r.label for r in train]))
        booster = fit(train)
        probabilities = predict(booster, [examples[i] for i in test])
        held_out_probability[test] = probabilities
        for i, p in zip(test, probabilities, strict=True):
            decided[(examples[i].report, examples[i].key)] = p >= threshold
        keys = sorted({r.key for r in train})
        model = FittedVerifier(
            Trees.from_booster(booster), threshold, {"question_keys": keys, "fold": fold + 1}
        )
        (args.folds_dir / f"fold-{fold + 1}.json").write_text(model.to_json(), encoding="utf-8")
        print(
            f"fold {fold + 1}: {len(train)} fitted, {len(test)} held out, threshold {threshold:.3f}"
        )

    full_oof = out_of_fold(examples, k)
    threshold = choose(full_oof, labels)
    shipped = FittedVerifier(
        Trees.from_booster(fit(examples)),
        threshold,
        {
            "question_keys": sorted({r.key for r in examples}),
            "reports": [str(p) for p in args.reports],
            **operating_point(args),
            "folds": k,
        },
    )
    args.model.write_text(shipped.to_json(), encoding="utf-8")

    per_set = {}
    for report, report_rows in rows_by_report.items():
        before = [r.refused_before for r in report_rows]
        after = [
            r.refused_before
            or (r.signals is not None and not r.long and not decided[(r.report, r.key)])
            for r in report_rows
        ]
        per_set[report] = {
            "without_verifier": set_measures(report_rows, before),
            "with_verifier_held_out": set_measures(report_rows, after),
        }
    signal_auc = {
        name: auc(np.array([r.signals[j] for r in examples]), labels)
        for j, name in enumerate(SIGNALS)
    }
    summary = {
        "command": ".venv/bin/python -m rag_eval.train_verifier "
        + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)),
        "commit": git_commit(),
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "examples": len(examples),
        "positives": int(labels.sum()),
        **operating_point(args),
        "folds": k,
        "shipped_threshold": threshold,
        "held_out_auc": auc(held_out_probability, labels),
        "held_out_precision_let_through": _precision(examples, decided),
        "signal_auc": signal_auc,
        "sets": per_set,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "verifier.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    (args.out / "README.md").write_text(_markdown(summary), encoding="utf-8")
    print(_markdown(summary))
    return 0


def operating_point(args: argparse.Namespace) -> dict[str, float | None]:
    """How the threshold was chosen (one of the three)."""
    refusal, cost = args.refusal_precision, args.wrong_cost
    chosen_by_target = refusal is None and cost is None
    return {
        "refusal_precision": refusal,
        "wrong_cost": cost if refusal is None else None,
        "target_precision": args.target_precision if chosen_by_target else None,
    }


def _describe(summary: dict) -> str:
    if summary.get("refusal_precision") is not None:
        return f"threshold for a refusal precision of {summary['refusal_precision']}"
    if summary.get("wrong_cost") is not None:
        return f"threshold by cost: a wrong answer costs {summary['wrong_cost']} right ones"
    return f"target precision {summary['target_precision']}"


def _precision(examples: Sequence[Row], decided: dict[tuple[str, str], bool]) -> float | None:
    through = [r.label for r in examples if decided[(r.report, r.key)]]
    return round(sum(through) / len(through), 4) if through else None


def _markdown(summary: dict) -> str:
    lines = [
        "# The verifier: held-out figures",
        "",
        "Produced by:",
        "",
        "```",
        summary["command"],
        "```",
        "",
        f"{summary['timestamp']} · commit {summary['commit']} · {summary['examples']} answered "
        f"examples ({summary['positives']} correct answers to answerable questions) · "
        f"{summary['folds']} folds by question · "
        + _describe(summary)
        + f" · shipped threshold {summary['shipped_threshold']:.3f}.",
        "",
        "Every figure with the verifier is held out: each question is decided by a model fitted "
        "on the other folds, with a threshold chosen by cross-validation inside those folds "
        "(nested). Without the verifier: the report's own decisions (refusals by retrieval, the "
        "model or the lexical check).",
        "",
        f"Held-out AUC of the fitted model: {_f(summary['held_out_auc'])}; precision of the "
        f"answers it lets through: {_f(summary['held_out_precision_let_through'])}.",
        "",
        "| report | questions | accuracy | unanswerable refused | answerable wrongly refused |",
        "|---|---|---|---|---|",
    ]
    for report, sets in summary["sets"].items():
        b, a = sets["without_verifier"], sets["with_verifier_held_out"]
        name = Path(report).name
        lines.append(
            f"| {name} | {b['questions']} | {_f(b['answer_accuracy'])} → "
            f"{_f(a['answer_accuracy'])} | {_f(b['refusal_rate_unanswerable'])} → "
            f"{_f(a['refusal_rate_unanswerable'])} | {_f(b['wrong_refusal_rate_answerable'])} → "
            f"{_f(a['wrong_refusal_rate_answerable'])} |"
        )
    lines += ["", "Each signal alone (AUC on the examples, 0.5 is chance):", ""]
    lines += ["| signal | AUC |", "|---|---|"]
    lines += [f"| {name} | {_f(value)} |" for name, value in summary["signal_auc"].items()]
    return "\n".join(lines) + "\n"


def _f(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    raise SystemExit(main())

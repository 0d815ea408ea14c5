"""The pure helpers of benchmarks/latency.py (loaded from its path: benchmarks is no package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "latency.py"


@pytest.fixture(scope="module")
def latency():
    spec = importlib.util.spec_from_file_location("bench_latency", PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_latency"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("bench_latency", None)


def test_correct_answerable_needs_gold_and_no_refusal(latency) -> None:
    assert latency.is_correct("It was Vladimir Medinsky [1].", False, ["Medinsky"], True)
    assert not latency.is_correct("It was Lavrov [1].", False, ["Medinsky"], True)
    # "no" is inside "do not say", but a refusal never answers an answerable question
    assert not latency.is_correct("The documents do not say.", True, ["No"], True)
    assert not latency.is_correct("The documents do not say.", False, ["No"], True)
    # a Yes/No gold is the answer's verdict, not any "no" in it
    assert latency.is_correct("No. Only Fortune said so [2].", False, ["no"], True)
    assert not latency.is_correct(
        "Yes. It was not reported by TechCrunch [1].", False, ["no"], True
    )


def test_correct_ignores_citation_numbers(latency) -> None:
    assert not latency.is_correct("Yes, about that [3].", False, ["3"], True)
    assert latency.is_correct("It rose to 3 percent [1, 2].", False, ["3"], True)


def test_correct_unanswerable_wants_a_refusal(latency) -> None:
    assert latency.is_correct("The documents do not say.", True, [], False)
    assert latency.is_correct("Insufficient information.", False, [], False)
    assert not latency.is_correct("Donald Trump.", False, [], False)


def test_pick_articles_keeps_needed_fills_fixed_and_keeps_order(latency) -> None:
    records = [{"doc_id": f"d{i:02d}"} for i in range(20)]
    picked = latency.pick_articles(records, ["d15", "d03", "d15", "missing"], 6, seed=1)
    ids = [r["doc_id"] for r in picked]
    assert len(ids) == 6 and {"d15", "d03"} <= set(ids)
    assert ids == sorted(ids)  # corpus order
    assert ids == [r["doc_id"] for r in latency.pick_articles(records, ["d15", "d03"], 6, 1)]
    assert latency.pick_articles(records, [], None, 1) == records
    assert latency.pick_articles(records, [], 50, 1) == records


def test_pick_articles_caps_needed_at_n(latency) -> None:
    records = [{"doc_id": f"d{i}"} for i in range(10)]
    picked = latency.pick_articles(records, ["d9", "d8", "d7"], 2, seed=0)
    assert [r["doc_id"] for r in picked] == ["d8", "d9"]


def test_interleaved_order_alternates(latency) -> None:
    orders = [latency.interleaved_order(i) for i in range(4)]
    assert orders[0] == orders[2] == ("rag", "llamaindex")
    assert orders[1] == orders[3] == ("llamaindex", "rag")


def test_summaries_skip_errors_and_missing_values(latency) -> None:
    assert latency.median([3.0, None, 1.0, 2.0]) == 2.0
    assert latency.median([None]) is None
    assert latency.ratio(1.0, 4.0) == 0.25
    assert latency.ratio(1.0, None) is None and latency.ratio(None, 2.0) is None
    runs = [
        latency.Run(100.0, 900.0, "a", False, 300),
        latency.Run(None, 50.0, "", False, None, error="boom"),
        latency.Run(300.0, 1100.0, "b", False, 500),
    ]
    summary = latency.summarize_runs(runs)
    assert summary["n"] == 3 and summary["errors"] == 1
    assert summary["ttft_ms_median"] == 200.0
    assert summary["total_ms_median"] == 1000.0
    assert summary["prompt_tokens_median"] == 400
    assert summary["ttft_ms_first"] == 100.0


def test_answer_summary_counts_accuracy_over_all_questions(latency) -> None:
    rows = [
        {"ttft_ms": 100.0, "total_ms": 1000.0, "prompt_tokens": 10, "error": None, "correct": True},
        {"ttft_ms": None, "total_ms": 5.0, "prompt_tokens": None, "error": "x", "correct": False},
    ]
    summary = latency.answer_summary(rows)
    assert summary["accuracy"] == 0.5 and summary["errors"] == 1
    assert summary["ttft_ms_median"] == 100.0


def test_formatting(latency) -> None:
    assert latency.fmt_ms(None) == "–"
    assert latency.fmt_ms(850.4) == "850 ms"
    assert latency.fmt_ms(12345.0) == "12.35 s"
    assert latency.fmt_ratio(0.254) == "0.25×"
    assert latency.table(["a", "b"], [[1, 2]]) == "| a | b |\n|---|---|\n| 1 | 2 |"
    assert latency.command_line(["--quick"]) == ".venv/bin/python benchmarks/latency.py --quick"


def test_cold_start_report_shows_fresh_start_and_restart(latency, tmp_path) -> None:
    start = {
        "command": "rag serve --ingest-if-empty --port 1",
        "to_ready_ms": 23_000.0,
        "to_first_answer_ms": 26_000.0,
        "seed_ingested_at_ms": 8_000.0,
        "answer": "Vladimir Medinsky [1].",
    }
    results = {
        "command": "bench --cold-start-only",
        "machine": {"date": "d", "git_commit": "c", "nproc": 2, "load_average_at_start": [0.1]},
        "cold_start": start,
        "cold_restart": {**start, "to_ready_ms": 15_000.0, "to_first_answer_ms": 17_500.0},
    }
    text = latency.cold_start_report(results, tmp_path).read_text()
    assert "| cold start to ready (fresh dir) | 23.00 s |" in text
    assert "| restart (documents already ingested) to ready | 15.00 s |" in text
    assert "| restart to first answer | 17.50 s |" in text
    assert "| start on a fresh dir without" not in text  # not measured, not shown

    results["setup"] = {"command": "rag setup", "ms": 14_000.0}
    results["cold_uncached"] = {**start, "to_ready_ms": 24_000.0}
    text = latency.cold_start_report(results, tmp_path).read_text()
    assert "| cold start to ready (fresh dir after `rag setup`) | 23.00 s |" in text
    assert "prompt prefixes computed, saved) | 14.00 s |" in text
    assert "| start on a fresh dir without `rag setup`: to ready | 24.00 s |" in text


def test_ingest_retrieval_report_shows_rate_and_latency(latency, tmp_path) -> None:
    results = {
        "command": "bench --ingest-retrieval-only",
        "machine": {"date": "d", "git_commit": "c", "nproc": 2, "load_average_at_start": [0.1]},
        "multihop": {
            "articles": 200,
            "ingest": {"documents": 200, "chunks": 10_070, "seconds": 100.7, "chunks_per_s": 100.0},
            "first_retrieval_ms": 3_020.0,
            "retrieval": {"p50_ms": 24.4, "p95_ms": 38.0, "n": 300, "chunks": 10_070},
        },
    }
    text = latency.ingest_retrieval_report(results, tmp_path).read_text()
    assert "| documents / chunks | 200 / 10,070 |" in text
    assert "| ingest chunks/s | 100.0 |" in text
    assert "| retrieval p50 / p95 over 300 questions | 24 ms / 38 ms |" in text

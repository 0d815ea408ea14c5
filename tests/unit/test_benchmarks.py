"""The pure helpers and the reports of benchmarks/ (loaded from their paths: benchmarks is no
package). The reports are built from synthetic results and the engine runs on the test fakes:
no model, no server."""

from __future__ import annotations

import importlib.util
import json
import socket
import sys
from pathlib import Path

import pytest
from fakes import FakeEmbedding, FakeLLM, PrimingLLM

from rag.compose import build_engine
from rag.events import Turn
from rag.knowledge_base import KnowledgeBase
from rag.llm import Endpoint, Message
from rag_eval.net import free_port
from rag_eval.report import render_html, render_markdown

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def latency():
    yield load("latency")
    sys.modules.pop("bench_latency", None)


@pytest.fixture(scope="module")
def embedder():
    yield load("embedder")
    sys.modules.pop("bench_embedder", None)


# ------------------------------------------------------------------------------ helpers


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
    assert not latency.is_correct("Both did [2-3].", False, ["3"], True)


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
    assert latency.median([4.0, 1.0]) == 2.5
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
    assert len(summary["runs"]) == 3


def test_answer_summary_counts_accuracy_over_all_questions(latency) -> None:
    rows = [
        {"ttft_ms": 100.0, "total_ms": 1000.0, "prompt_tokens": 10, "error": None, "correct": True},
        {"ttft_ms": None, "total_ms": 5.0, "prompt_tokens": None, "error": "x", "correct": False},
    ]
    summary = latency.answer_summary(rows)
    assert summary["accuracy"] == 0.5 and summary["errors"] == 1
    assert summary["ttft_ms_median"] == 100.0


def test_p50_p95_of_nothing_is_not_nan(latency) -> None:
    assert latency.p50_p95([]) == {"p50_ms": None, "p95_ms": None, "n": 0}
    assert latency.p50_p95([10.0, 20.0, 30.0]) == {"p50_ms": 20.0, "p95_ms": 29.0, "n": 3}


def test_formatting(latency) -> None:
    assert latency.fmt_ms(None) == "–"
    assert latency.fmt_ms(850.4) == "850 ms"
    assert latency.fmt_ms(12345.0) == "12.35 s"
    assert latency.fmt_ratio(0.254) == "0.25×"
    assert latency.fmt_num(10070) == "10,070"
    assert latency.command_line(["--quick"]) == ".venv/bin/python benchmarks/latency.py --quick"


def test_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


class Calls:
    """The benchmark's call log without llama-index's dispatcher."""

    def __init__(self) -> None:
        self.messages: list[list[Message]] = []

    def reset(self) -> None:
        self.messages = []


def test_recorded_llm_logs_answer_calls_not_priming(latency) -> None:
    inner, calls = PrimingLLM("ab"), Calls()
    llm = latency.RecordedLLM(inner, calls)
    question = [{"role": "user", "content": "q"}]
    assert "".join(llm.stream(question, max_tokens=5)) == "ab"
    llm.prime([{"role": "system", "content": "prefix"}])
    assert calls.messages == [question] == inner.calls
    assert inner.primed and llm.description == inner.description


def test_time_rag_counts_the_engines_model_calls(latency, settings, seed_dir) -> None:
    settings.min_dense_score = 0.1  # bag-of-words similarities are lower than MiniLM's
    kb = KnowledgeBase(settings, FakeEmbedding())
    kb.ingest([seed_dir])
    calls = Calls()
    model = FakeLLM(
        "Vladimir Medinsky led the delegation [1].",
        "What did Vladimir Medinsky say both sides agreed to?",
        "They agreed to present a vision of a ceasefire [1].",
    )
    engine = build_engine(settings, llm=latency.RecordedLLM(model, calls), kb=kb)
    first = latency.time_rag(engine, calls, latency.SEED_QUESTION)
    assert first.error is None and first.detail["llm_calls"] == 1
    assert first.prompt_tokens and first.ttft_ms is not None and first.ttft_ms <= first.total_ms
    history = [Turn(latency.SEED_QUESTION, first.answer)]
    follow = latency.time_rag(engine, calls, latency.FOLLOW_UP, history)
    assert follow.detail["llm_calls"] == 2  # condense, then answer
    assert "condense_ms" in follow.detail["engine_timings_ms"]
    assert follow.detail["question_used"] == "What did Vladimir Medinsky say both sides agreed to?"


def test_model_server_record_leaves_out_the_key(latency) -> None:
    endpoint = Endpoint("http://127.0.0.1:1/v1", "qwen", api_key="secret")
    record = latency.ModelServer(endpoint, 2048, 160, 2).record()
    assert "secret" not in json.dumps(record)
    assert record["base_url"] == endpoint.base_url and record["model"] == "qwen"
    assert (record["context_window"], record["max_tokens"], record["slots"]) == (2048, 160, 2)


def test_llamaindex_pipeline_gets_its_llm_from_rags_factory(latency, seed_dir, monkeypatch):
    from llama_index.core.llms import MockLLM

    import rag.llm.openai_compatible
    from rag.ingest import load_file

    made = []

    def factory(endpoint, max_tokens, context_window):
        made.append((endpoint, max_tokens, context_window))
        return MockLLM()

    monkeypatch.setattr(rag.llm.openai_compatible, "llama_index_llm", factory)
    endpoint = Endpoint("http://127.0.0.1:1/v1", "qwen", timeout=600.0, max_retries=0)
    docs = [load_file(path) for path in sorted(seed_dir.glob("*.txt"))]
    server = latency.ModelServer(endpoint, 2048, 160, 2)
    query_engine, ingest = latency.llamaindex_pipeline(docs, FakeEmbedding(), server)
    assert made == [(endpoint, 160, 2048)]
    assert ingest["documents"] == 1 and ingest["chunks"] >= 1
    assert query_engine is not None


# ------------------------------------------------------------------------------ report blocks


def test_headings_and_lists_render_in_markdown_and_html() -> None:
    blocks = [("h3", "Per question"), ("ul", ["one `a|b`", "two <b>"])]
    assert render_markdown(blocks) == "### Per question\n\n- one `a|b`\n- two <b>\n"
    html = render_html(blocks, "t")
    assert "<h3>Per question</h3>" in html
    assert "<ul><li>one <code>a|b</code></li><li>two &lt;b&gt;</li></ul>" in html


def test_existing_block_kinds_render_as_before() -> None:
    blocks = [
        ("h1", "T"),
        ("h2", "S"),
        ("p", "a `b` c"),
        ("code", "x"),
        ("table", ["a", "b"], [[1, "x|y"]]),
        ("img", "plot", Path("/tmp/p.png")),
    ]
    expected = "# T\n\n## S\n\na `b` c\n\n```\nx\n```\n\n| a | b |\n|---|---|\n| 1 | x\\|y |\n\n"
    assert render_markdown(blocks) == expected + "![plot](p.png)\n"
    assert "<p>a <code>b</code> c</p>" in render_html(blocks[:3], "t")


MACHINE = {
    "nproc": 2,
    "cpu_model": "Test CPU",
    "ram_gb": 8.0,
    "python": "3.11",
    "platform": "Linux",
    "date": "2026-01-01T00:00:00+00:00",
    "git_commit": "abc123",
    "load_average_at_start": [0.1, 0.2, 0.3],
    "load_average_at_end": [0.4, 0.5, 0.6],
}
START = {
    "command": "rag serve --ingest-if-empty --port 1",
    "to_ready_ms": 23_000.0,
    "to_first_answer_ms": 26_000.0,
    "seed_ingested_at_ms": 8_000.0,
    "answer": "Vladimir Medinsky [1].",
    "refused": False,
    "error": None,
}


def ingest(documents: int, chunks: int, seconds: float) -> dict:
    return {
        "documents": documents,
        "chunks": chunks,
        "seconds": seconds,
        "chunks_per_s": chunks / seconds,
    }


def synthetic_results(latency, mode: str = "full") -> dict:
    """A whole run's results, summarized by the benchmark's own functions."""
    Run = latency.Run

    def seed_runs(ttft: float, total: float, answer: str, calls: int) -> list:
        return [
            Run(ttft * 10, total * 2, answer, False, 775, detail={"llm_calls": calls}),
            Run(ttft, total, answer, False, 775, detail={"llm_calls": calls}),
            Run(ttft, total, answer, False, 775, detail={"llm_calls": calls}),
        ]

    follow = [
        Run(
            500.0,
            1_870.0,
            "Both sides agreed [1].",
            False,
            700,
            detail={
                "question_used": "What did Medinsky say?",
                "llm_calls": 2,
                "engine_timings_ms": {"condense_ms": 712.0},
            },
        )
    ] * 3
    rag_follow_up = latency.summarize_runs(follow)
    rag_follow_up["condense_ms_median"] = 712.0
    questions = []
    for i, (qtype, rag_ok, li_ok) in enumerate(
        [("inference_query", True, False), ("null_query", True, True)]
    ):
        rag_run = {
            "ttft_ms": 400.0 + i,
            "total_ms": 1_200.0,
            "prompt_tokens": 500,
            "error": None,
            "detail": {"llm_calls": 1},
            "correct": rag_ok,
        }
        li_run = {**rag_run, "ttft_ms": 3_000.0, "total_ms": 6_000.0, "correct": li_ok}
        questions.append(
            {"id": f"q{i}", "question_type": qtype, "rag": rag_run, "llamaindex": li_run}
        )
    rag_mh = latency.answer_summary([q["rag"] for q in questions])
    li_mh = latency.answer_summary([q["llamaindex"] for q in questions])
    return {
        "command": latency.command_line(["--quick"] if mode == "quick" else []),
        "plan": {"mode": mode},
        "machine": MACHINE,
        "wall_s": 600.0,
        "endpoint": latency.ModelServer(
            Endpoint("http://127.0.0.1:1/v1", "qwen"), 2048, 160, 2
        ).record(),
        "setup": {"command": "rag setup", "ms": 14_000.0},
        "cold_start": START,
        "cold_restart": {**START, "to_ready_ms": 15_000.0, "to_first_answer_ms": 17_500.0},
        "cold_uncached": {**START, "to_ready_ms": 24_000.0, "to_first_answer_ms": 29_000.0},
        "seed": {
            "ingest": ingest(1, 8, 0.9),
            "warm_up_ms": 16_150.0,
            "rag_seed_question": latency.summarize_runs(
                seed_runs(92.0, 533.0, "Vladimir Medinsky [2].", 1)
            ),
            "rag_follow_up": rag_follow_up,
            "retrieval": {"p50_ms": 6.0, "p95_ms": 8.0, "n": 72, "chunks": 8},
            "llamaindex_ingest": ingest(1, 1, 0.05),
            "llamaindex_seed_question": latency.summarize_runs(
                seed_runs(1_000.0, 2_000.0, "Medinsky.", 1)
            ),
        },
        "multihop": {
            "articles": 200,
            "sample_seed": 2024,
            "ranking_note": "Ranked by fold models (synthetic note).",
            "ingest": ingest(200, 10_070, 100.7),
            "llamaindex_ingest": ingest(200, 900, 50.0),
            "first_retrieval_ms": 3_020.0,
            "retrieval": {"p50_ms": 32.4, "p95_ms": 49.0, "n": 300, "chunks": 10_070},
            "questions": questions,
            "rag": rag_mh,
            "llamaindex": li_mh,
            "ttft_speedup": latency.ratio(li_mh["ttft_ms_median"], rag_mh["ttft_ms_median"]),
        },
        "memory": {"self_peak_rss_mb": 6_340.0, "children_peak_rss_mb": 1_200.0},
    }


def headings(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("#")]


def assert_has(text: str, *pieces: str) -> None:
    missing = [piece for piece in pieces if piece not in text]
    assert not missing, missing


@pytest.fixture(scope="module")
def full_report(latency) -> str:
    return latency.render_markdown(synthetic_results(latency), "latency.png")


def test_latency_report_has_every_section(full_report) -> None:
    text = full_report
    assert headings(text) == [
        '# Latency: "Fast answers on a 2-core CPU"',
        "## Summary",
        "## 1. Seed corpus (seeds/)",
        "### Cold start",
        "### Warm, in-process",
        "## 2. llama-index default pipeline, seed question",
        "## 3. MultiHop-RAG dev",
        "### Per question",
        "## 4. Peak memory",
        "## Method notes",
    ]
    assert_has(
        text,
        "Command: `.venv/bin/python benchmarks/latency.py`",
        "| machine |  |\n|---|---|\n| nproc | 2 |\n| CPU model | Test CPU |",
        "| benchmark wall time | 10.0 min |",
        "![latency](latency.png)",
    )
    assert "Quick mode" not in text
    assert text.endswith("Details of every run are in latency.json.\n")


def test_latency_report_summary_rows(full_report) -> None:
    assert_has(
        full_report,
        "| cold start to ready (`rag serve --ingest-if-empty` after `rag setup`) | 23.00 s |",
        "| cold start to first answer (`ask` API) | 26.00 s |",
        "| seed question, first ask: time to first token | 920 ms |",
        "| follow-up (condense included), first ask: total | 1.87 s |",
        "| restart (documents already ingested) to ready | 15.00 s |",
        "| MultiHop median TTFT, llama-index / rag (goal ≥ 3×) | 7.49× (met) |",
        "| MultiHop answer accuracy, rag / llama-index | 1.000 / 0.500 |",
        "| retrieval p50 / p95 at 10,070 chunks | 32 ms / 49 ms |",
        "| peak RSS, benchmark process | 6,340 MB |",
    )


def test_latency_report_section_tables(full_report) -> None:
    text = full_report
    assert_has(
        text,
        # 1. seed corpus: cold start, warm, ingest
        "| `rag setup` (model assembled; prompt prefixes computed, saved) | 14.00 s |",
        "| start on a fresh dir without `rag setup`: to ready | 24.00 s |",
        "| … to first answer | 29.00 s |",
        "| measure | median | first run | n |",
        '| "Who led Russia\'s delegation?" time to first token | 92 ms | 920 ms | 3 |',
        "| prompt tokens (result.tokens) | 775 |  | 3 |",
        "| follow-up: condense part | 712 ms |  | 3 |",
        "| retrieval p50 / p95 (golden questions, 8 chunks) | 6 ms / 8 ms |  | 72 |",
        "| rag (seed) | 1 | 8 | 0.9 s | 8.9 |",
        # 2. llama-index on the seed question
        "| seed question | rag | llama-index | rag / llama-index |",
        "| median time to first token | 92 ms | 1.00 s | 0.09× |",
        "| first ask: total | 1.07 s | 4.00 s | 0.27× |",
        "| median LLM calls per answer | 1 | 1 | – |",
        # 3. MultiHop
        "| rag | 200 | 10,070 | 100.7 s | 100.0 |",
        "| llama-index default | 200 | 900 | 50.0 s | 18.0 |",
        "| answer accuracy | 1.000 | 0.500 | – |",
        "| errors | 0 | 0 | – |",
        "| id | type | rag TTFT | rag total | rag ✓ | li TTFT | li total | li ✓ |",
        "| q0 | inference_query | 400 ms | 1.20 s | ✓ | 3.00 s | 6.00 s | ✗ |",
        # 4. memory
        "| children (the cold-start `rag serve`) | 1,200 MB |",
        "Ranked by fold models (synthetic note).",
        "Median TTFT speed-up (llama-index / rag): **7.49×** — goal ≥ 3×: **met**.",
        'Follow-up searched for: "What did Medinsky say?"; answer:',
        "- One model server for both systems: rag's local xllamacpp server (n_ctx 4096",
    )
    # each MultiHop question is asked once: no first-ask rows in that comparison
    multihop = text.split("## 3. MultiHop-RAG dev")[1]
    assert "first ask" not in multihop.split("### Per question")[0]


def test_latency_report_quick_mode_and_missing_goal(latency) -> None:
    results = synthetic_results(latency, mode="quick")
    results["multihop"]["ttft_speedup"] = None
    del results["cold_restart"], results["setup"], results["cold_uncached"]
    text = latency.render_markdown(results, "latency.png")
    assert "**Quick mode: a smoke test, not benchmark results.**" in text
    assert "| MultiHop median TTFT, llama-index / rag (goal ≥ 3×) | – (not met) |" in text
    assert "| cold start to ready (`rag serve --ingest-if-empty`) | 23.00 s |" in text
    assert "restart" not in text


def test_write_report_writes_json_before_markdown(latency, tmp_path, monkeypatch) -> None:
    plotted = []
    monkeypatch.setattr(latency, "plot", lambda results, path: plotted.append(path))
    results = synthetic_results(latency)
    path = latency.write_report(results, tmp_path)
    assert path == tmp_path / "latency.md"
    assert path.read_text() == latency.render_markdown(results, "latency.png")
    assert json.loads((tmp_path / "latency.json").read_text())["wall_s"] == 600.0
    assert plotted == [tmp_path / "latency.png"]


def test_cold_start_report_shows_fresh_start_and_restart(latency, tmp_path) -> None:
    results = {
        "command": "bench --cold-start-only",
        "machine": {"date": "d", "git_commit": "c", "nproc": 2, "load_average_at_start": [0.1]},
        "cold_start": START,
        "cold_restart": {**START, "to_ready_ms": 15_000.0, "to_first_answer_ms": 17_500.0},
    }
    path = latency.cold_start_report(results, tmp_path)
    text = path.read_text()
    assert headings(text) == ["# Cold start of `rag serve`"]
    assert_has(
        text,
        "Command: `bench --cold-start-only`",
        "d · commit `c` · 2 CPUs · load average at start [0.1]\n",
        "| cold start to ready (fresh dir) | 23.00 s |",
        "| restart (documents already ingested) to ready | 15.00 s |",
        "| restart to first answer | 17.50 s |",
        'First answer: "Vladimir Medinsky [1]."',
    )
    assert "| start on a fresh dir without" not in text  # not measured, not shown
    assert json.loads((tmp_path / "latency-cold-start.json").read_text()) == results

    results["setup"] = {"command": "rag setup", "ms": 14_000.0}
    results["cold_uncached"] = {**START, "to_ready_ms": 24_000.0}
    results["machine"]["load_average_at_end"] = [0.9]
    text = latency.cold_start_report(results, tmp_path).read_text()
    assert_has(
        text,
        "load average at start [0.1], at end [0.9]",
        "| cold start to ready (fresh dir after `rag setup`) | 23.00 s |",
        "prompt prefixes computed, saved) | 14.00 s |",
        "| start on a fresh dir without `rag setup`: to ready | 24.00 s |",
    )


def test_ingest_retrieval_report_shows_rate_and_latency(latency, tmp_path) -> None:
    results = {
        "command": "bench --ingest-retrieval-only",
        "machine": {"date": "d", "git_commit": "c", "nproc": 2, "load_average_at_start": [0.1]},
        "multihop": {
            "articles": 200,
            "ingest": ingest(200, 10_070, 100.7),
            "first_retrieval_ms": 3_020.0,
            "retrieval": {"p50_ms": 24.4, "p95_ms": 38.0, "n": 300, "chunks": 10_070},
        },
    }
    text = latency.ingest_retrieval_report(results, tmp_path).read_text()
    assert headings(text) == ["# Ingest and retrieval latency (MultiHop-RAG articles)"]
    assert_has(
        text,
        "The full run's 200 articles",
        "| measure | value |",
        "| documents / chunks | 200 / 10,070 |",
        "| ingest wall time | 100.7 s |",
        "| ingest chunks/s | 100.0 |",
        "| first retrieval (builds the keyword indexes) | 3.02 s |",
        "| retrieval p50 / p95 over 300 questions | 24 ms / 38 ms |",
    )


def test_embedder_report(embedder) -> None:
    rows = [("shipped file as is (fp32 products)", "bare text", 113.34)]
    rows.append(("int8 products (rag)", "with header", 130.0))
    text = render_markdown(
        embedder.report_blocks("cmd --articles 5", 3_286, 60, 64, 16, rows, 0.99351, 0.897)
    )
    assert headings(text) == ["# Embedder alone"]
    assert_has(
        text,
        "Command: `cmd --articles 5`",
        "3,286 chunks of 60 MultiHop-RAG articles (64 tokens)",
        f"groups of {embedder.GROUP}, batches of 16.",
        "| model | text embedded | chunks/s |\n|---|---|---|\n",
        "| shipped file as is (fp32 products) | bare text | 113.3 |",
        "| int8 products (rag) | with header | 130.0 |",
        "mean cosine 0.9935; of each of 200 chunks' 10 nearest chunks, 89.7% are",
    )

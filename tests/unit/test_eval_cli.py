"""`rag eval` end to end (rag_eval.cli) with a scripted LLM and a bag-of-words embedder over a
tiny hand-checked corpus; and how it picks held-out rankings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import FakeEmbedding, FakeLLM

import rag_eval.heldout
from rag.answer import Engine
from rag.cli import build_parser
from rag.knowledge_base import KnowledgeBase
from rag_eval import cli
from rag_eval.baseline import Baseline
from rag_eval.data import Question
from rag_eval.heldout import HeldOutRanker, held_out_ranking
from rag_eval.metrics import retrieval_measures, summarize
from rag_eval.runners import rag_row

CORPUS = [
    {
        "doc_id": "bakery",
        "title": "Riverside bakery",
        "source": "Town News",
        "published_at": "2023-11-27 08:45:59.000000000Z",
        "text": "The Riverside bakery was founded by Maria Lopez in 1998.",
    },
    {
        "doc_id": "museum",
        "title": "Harbour museum",
        "source": "Town News",
        "published_at": "2023-09-26T21:11:15+00:00",
        "text": "The harbour museum opened in 2005 with a whale skeleton.",
    },
    {
        "doc_id": "bus",
        "title": None,
        "source": None,
        "published_at": None,
        "text": "Bus line 7 runs every ten minutes to the station.",
    },
]
QUESTIONS = [
    {
        "id": "q1",
        "question": "Who founded the Riverside bakery?",
        "answers": ["Maria Lopez"],
        "answerable": True,
        "question_type": "direct",
        "gold_doc_ids": ["bakery"],
        "evidence": [{"doc_id": "bakery", "fact": "founded by  Maria\nLopez"}],
    },
    {
        "id": "q2",
        "question": "When did the harbour museum open?",
        "answers": ["2005"],
        "answerable": True,
        "question_type": "direct",
        "gold_doc_ids": ["museum"],
        "evidence": [
            {"doc_id": "museum", "fact": "opened in 2005"},
            {"doc_id": "museum", "fact": "a fact that is in no document"},
        ],
    },
    {
        "id": "q3",
        "question": "What does a loaf cost at the Riverside bakery?",
        "answers": [],
        "answerable": False,
        "question_type": "unanswerable",
        "gold_doc_ids": [],
        "evidence": [],
    },
]
SCRIPT = (
    "The Riverside bakery was founded by Maria Lopez [1].",  # q1: right, cited
    "The museum opened in 2010 [1].",  # q2: unsupported number -> the check refuses
    "The documents do not say.",  # q3: the model refuses
    "YES",  # the judge, on q1's one sentence
)


@pytest.fixture
def data(tmp_path: Path) -> dict[str, Path]:
    corpus = tmp_path / "tiny" / "corpus.jsonl"
    corpus.parent.mkdir()
    corpus.write_text("\n".join(json.dumps(r) for r in CORPUS) + "\n")
    questions = tmp_path / "tiny" / "questions.jsonl"
    questions.write_text("\n".join(json.dumps(q) for q in QUESTIONS) + "\n")
    return {"corpus": corpus, "questions": questions, "root": tmp_path}


@pytest.fixture
def eval_settings(settings):
    settings.min_dense_score = 0.1  # bag-of-words similarities are lower than MiniLM's
    return settings


def run_eval(data, settings, *extra: str, script=SCRIPT, engines: list | None = None):
    root = data["root"]
    argv = [
        "eval",
        "--corpus",
        str(data["corpus"]),
        "--questions",
        str(data["questions"]),
        "--out",
        str(root / "reports"),
        "--history",
        str(root / "history.jsonl"),
        *extra,
    ]
    args = build_parser().parse_args(argv)

    def make_engine(s):
        engine = Engine(s, KnowledgeBase(s, FakeEmbedding()), FakeLLM(*script))
        if engines is not None:
            engines.append(engine)
        return engine

    return cli.main(args, settings, make_engine=make_engine)


def last_json(capsys) -> dict:
    out = capsys.readouterr().out
    return json.loads(out.strip().splitlines()[-1])


def test_eval_loop_measures_retrieval_answers_refusals_and_citations(data, eval_settings, capsys):
    engines: list = []
    assert run_eval(data, eval_settings, "--no-baseline", engines=engines) == 0
    summary = last_json(capsys)
    # the engine's own model answered, unwrapped: three answers and one judge call, nothing else
    # (it has no prompt cache, and it is no OpenAI-compatible endpoint, so there is no warm-up)
    llm = engines[0].llm
    assert isinstance(llm, FakeLLM) and llm.responses == [] and len(llm.calls) == 4
    assert summary["mode"] == "full" and summary["dataset"] == "tiny"
    assert (summary["questions"], summary["answerable"], summary["unanswerable"]) == (3, 2, 1)
    # Retrieval, over q1 and q2 (q3 is unanswerable). Three one-chunk documents, all in every
    # top 10; each question's own document ranks first.
    assert summary["hits@4"] == summary["hits@10"] == summary["mrr@10"] == 1.0
    # q1: one fact, found at rank 1 -> AP 1. q2: two facts, one findable at rank 1 -> AP 1/2.
    assert summary["map@10"] == 0.75
    assert summary["evidence_recall@10"] == 0.75  # q1 1/1, q2 1/2
    assert summary["all_gold_docs@10"] == 1.0
    # Answers: q1 right; q2's unsupported "2010" is refused by the citation check.
    assert summary["answer_accuracy"] == summary["answer_accuracy_words"] == 0.5
    # q1 F1: 2 gold tokens among 7 answer tokens -> P 2/7, R 1 -> 4/9; q2 refused -> 0
    assert summary["answer_f1"] == round((4 / 9 + 0) / 2, 4)
    assert summary["refusal_rate_unanswerable"] == 1.0
    assert summary["wrong_refusal_rate_answerable"] == 0.5
    assert summary["correct_rate"] == round(2 / 3, 4)
    assert summary["citation_validity"] == 1.0
    assert summary["citation_recall"] == summary["citation_precision"] == 1.0
    assert summary["errors"] == 0
    assert summary["baseline"] is None

    details = json.loads((data["root"] / "reports" / "tiny.json").read_text())
    rows = {r["id"]: r for r in details["rows"]}
    assert rows["q2"]["refused_by"] == "check" and rows["q3"]["refused_by"] == "model"
    assert rows["q1"]["cited"] == [1] and rows["q1"]["raw_citation_valid"] is True
    assert details["run"]["judge"]["calls"] == 1
    assert set(details["per_type"]) == {"direct", "unanswerable"}
    assert details["per_type"]["direct"]["answer_accuracy"] == 0.5
    report = (data["root"] / "reports" / "tiny.md").read_text()
    assert report.startswith("# rag eval: tiny")
    assert "## Failures" in report and "q2" in report
    assert (data["root"] / "reports" / "tiny.html").read_text().startswith("<!doctype html>")


def test_corpus_records_become_cleaned_documents_with_dates(data, eval_settings, capsys):
    engines: list = []
    run_eval(data, eval_settings, "--retrieval-only", engines=engines)
    docs = {d.doc_id: d for d in engines[0].kb.documents()}
    assert set(docs) == {"bakery", "museum", "bus"}
    assert docs["bakery"].published == "2023-11-27" and docs["museum"].published == "2023-09-26"
    assert docs["bakery"].title == "Riverside bakery" and docs["bakery"].source == "Town News"
    assert docs["bus"].published is None and docs["bus"].title.startswith("Bus line 7")


def test_summary_json_is_the_last_stdout_line_and_gate_passes(
    data, eval_settings, tmp_path, capsys
):
    gate = tmp_path / "gate.json"
    gate.write_text(
        json.dumps(
            {
                "_comment": "thresholds",
                "citation_validity": 1.0,
                "answer_accuracy": 0.5,
                "refusal_rate_unanswerable": 1.0,
                "wrong_refusal_rate_answerable_max": 0.5,
                "hits@4": 0.9,
            }
        )
    )
    assert run_eval(data, eval_settings, "--no-baseline", "--gate", str(gate)) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(lines[-1])
    assert summary["gate_passed"] is True
    checks = [line for line in lines[:-1] if line.startswith(("PASS", "FAIL"))]
    assert len(checks) == 5 and all(line.startswith("PASS") for line in checks)


def test_gate_fails_on_a_missed_threshold(data, eval_settings, tmp_path, capsys):
    gate = tmp_path / "gate.json"
    gate.write_text(json.dumps({"answer_accuracy": 0.9, "wrong_refusal_rate_answerable_max": 0.1}))
    assert run_eval(data, eval_settings, "--no-baseline", "--gate", str(gate)) == 1
    out = capsys.readouterr().out
    assert "FAIL  answer_accuracy = 0.5 (>= 0.9)" in out
    assert "FAIL  wrong_refusal_rate_answerable = 0.5 (<= 0.1)" in out
    assert json.loads(out.strip().splitlines()[-1])["gate_passed"] is False


def test_bad_gate_file_is_an_error_before_anything_runs(data, eval_settings, tmp_path, capsys):
    gate = tmp_path / "gate.json"
    gate.write_text('{"hits@4": "high"}')
    assert run_eval(data, eval_settings, "--gate", str(gate)) == 2
    assert "must be a number" in capsys.readouterr().err


def test_second_run_reuses_the_cached_collection(data, eval_settings, capsys):
    engines: list = []
    run_eval(data, eval_settings, "--retrieval-only", "--no-baseline", engines=engines)
    run_eval(data, eval_settings, "--retrieval-only", "--no-baseline", engines=engines)
    first, second = engines
    name = first.settings.collection
    assert name.startswith("eval-") and name == second.settings.collection
    assert eval_settings.collection == "documents"  # the user's settings are untouched
    details = json.loads((data["root"] / "reports" / "tiny-retrieval.json").read_text())
    ingest = details["run"]["ingest"]
    assert (ingest["added"], ingest["unchanged"], ingest["chunks"]) == (0, 3, 0)
    # the user's own collection stays empty
    assert KnowledgeBase(eval_settings, FakeEmbedding()).stats()["documents"] == 0
    # other content -> another collection
    data["corpus"].write_text(data["corpus"].read_text().replace("1998", "1999"))
    run_eval(data, eval_settings, "--retrieval-only", "--no-baseline", engines=engines)
    assert engines[2].settings.collection != name


def test_each_run_appends_one_history_line(data, eval_settings, capsys):
    run_eval(data, eval_settings, "--retrieval-only")
    run_eval(data, eval_settings, "--no-baseline")
    lines = (data["root"] / "history.jsonl").read_text().splitlines()
    assert len(lines) == 2
    first, second = map(json.loads, lines)
    assert first["mode"] == "retrieval" and second["mode"] == "full"
    assert first["dataset"] == "tiny" and first["timestamp"]
    assert first["settings"]["chunk_size"] == eval_settings.chunk_size
    assert second["summary"]["answer_accuracy"] == 0.5
    # retrieval-only baseline: llama-index's dense retriever over the same collection
    assert first["baseline"]["hits@10"] == 1.0 and "answer_accuracy" not in first["summary"]
    # BM25 alone over the same chunks, measured in the same run: q1 and q2 share words with
    # their evidence; q2's second fact is in no document
    assert first["bm25_only"]["hits@10"] == first["bm25_only"]["mrr@10"] == 1.0
    assert first["bm25_only"]["evidence_recall@10"] == pytest.approx(0.75)
    assert "## BM25 only" in Path(first["report"]).read_text()


def test_a_row_measures_the_ranking_behind_the_answer_and_the_models_raw_text(
    data, eval_settings, capsys
):
    from rag.events import Turn

    engines: list = []
    run_eval(data, eval_settings, "--retrieval-only", "--no-baseline", engines=engines)
    engine = engines[0]
    engine._llm = FakeLLM(
        "The museum opened in 2010 [1].",  # q2: refused by the check
        "Who founded the Riverside bakery?",  # condensing the follow-up
        "Maria Lopez founded it [1] [7].",
    )
    q2 = Question.from_record(QUESTIONS[1], 1)
    follow_up = Question.from_record({**QUESTIONS[0], "question": "Who founded it?"}, 0)
    follow_up.history = [Turn("Tell me about the Riverside bakery.", "It is a bakery [1].")]
    rows = []
    for q in (q2, follow_up):
        rows.append(row := rag_row(engine, q, full=True))
        # the ranking measured is the retriever's own for the question it searched with
        retrieval = engine.retriever.retrieve(row["question_used"])
        head = retrieval.candidates[:10]
        assert row["retrieval"] == retrieval_measures(q, [(c.doc_id, c.unit_text) for c in head])
        assert [(t["doc_id"], t["chunk_id"]) for t in row["top"]] == [
            (c.doc_id, c.key) for c in head[:3]
        ]
    refused, row = rows
    assert refused["refused_by"] == "check"
    assert refused["raw_answer"] == "The museum opened in 2010 [1]."
    assert refused["raw_citation_valid"] is True
    assert row["question_used"] == "Who founded the Riverside bakery?"
    # what the model wrote, before the check
    assert row["raw_answer"] == "Maria Lopez founded it [1] [7]."
    assert row["raw_citation_valid"] is False  # [7] names no shown passage
    assert row["refused"] is False and row["cited"] == [1] and row["accuracy"] == 1.0
    # a retrieval-only row measures the same ranking of the same question
    assert rag_row(engine, follow_up, full=False)["retrieval"] == retrieval_measures(
        follow_up,
        [(c.doc_id, c.unit_text) for c in engine.retriever.retrieve(follow_up.text).candidates],
    )


def test_a_model_failing_before_retrieval_still_leaves_retrieval_measured(
    data, eval_settings, capsys
):
    from rag.events import Turn
    from rag.llm import LLMError

    engines: list = []
    run_eval(data, eval_settings, "--retrieval-only", "--no-baseline", engines=engines)
    engine = engines[0]
    engine._llm = FakeLLM(LLMError("Cannot reach the LLM"))  # fails condensing the follow-up
    q = Question.from_record({**QUESTIONS[0], "question": "Who founded it, the bakery?"}, 0)
    q.history = [Turn("Tell me about the Riverside bakery.", "It is a bakery [1].")]
    row = rag_row(engine, q, full=True)
    assert row["error"] == "Cannot reach the LLM" and row["passages"] == []
    assert row["raw_answer"] is None and row["refused_by"] is None
    # retrieval is measured on the question as asked, as when the model works
    head = engine.retriever.retrieve(q.text).candidates[:10]
    assert row["retrieval"] == retrieval_measures(q, [(c.doc_id, c.unit_text) for c in head])
    assert row["retrieval"]["hits@10"] == 1.0


def test_baseline_citation_query_engine_on_the_same_collection(data, eval_settings, capsys):
    from llama_index.core.llms import CompletionResponse, CustomLLM, LLMMetadata
    from llama_index.core.llms.callbacks import llm_completion_callback
    from pydantic import Field

    class ScriptedLlamaIndexLLM(CustomLLM):
        replies: list[str] = Field(default_factory=list)
        prompts: list[str] = Field(default_factory=list)

        @property
        def metadata(self) -> LLMMetadata:
            return LLMMetadata(context_window=4096, num_output=160)

        @llm_completion_callback()
        def complete(self, prompt: str, formatted: bool = False, **kwargs) -> CompletionResponse:
            self.prompts.append(prompt)
            return CompletionResponse(text=self.replies.pop(0))

        @llm_completion_callback()
        def stream_complete(self, prompt: str, formatted: bool = False, **kwargs):
            self.prompts.append(prompt)
            text = self.replies.pop(0)

            def pieces():
                for i in range(0, len(text), 4):
                    yield CompletionResponse(text=text[: i + 4], delta=text[i : i + 4])

            return pieces()

    engines: list = []
    run_eval(data, eval_settings, "--retrieval-only", "--no-baseline", engines=engines)
    llm = ScriptedLlamaIndexLLM(
        replies=[
            "Maria Lopez founded it [1].",
            "It opened in 2005 [7].",  # names a source that was not shown
            "None of the sources are helpful for this question.",
        ]
    )
    baseline = Baseline(engines[0], llm)
    questions = [Question.from_record(q, i) for i, q in enumerate(QUESTIONS)]
    rows = [baseline.row(q) for q in questions]
    assert "Source 1:" in llm.prompts[0] and "Riverside bakery" in llm.prompts[0]
    assert len(rows[0]["passages"]) == 3  # similarity_top_k=3 of three one-chunk documents
    assert rows[0]["accuracy"] == 1.0 and rows[0]["citation_valid"] is True
    assert rows[1]["accuracy"] == 1.0 and rows[1]["citation_valid"] is False
    assert rows[2]["refused"] is True and rows[2]["correct"] is True
    assert rows[0]["retrieval"]["hits@10"] == 1.0 and rows[2]["retrieval"] is None
    assert {"retrieval_ms", "first_token_ms", "total_ms"} <= set(rows[0]["timings"])
    summary = summarize(rows, full=True)
    assert summary["citation_validity"] == 0.5 and summary["refusal_rate_unanswerable"] == 1.0


def _tree_model(path: Path, **trained_on) -> Path:
    """A small LambdaMART model over the real features, saved with this training record."""
    import numpy as np

    from rag.retrieval.reranker import FEATURES, fit_lambdamart

    rng = np.random.default_rng(len(path.name))
    groups = [(rng.normal(size=(6, len(FEATURES))), np.arange(6) == 0) for _ in range(20)]
    ranker = fit_lambdamart(groups, trained_on, rounds=3, num_leaves=3, min_data_in_leaf=5)
    path.write_text(ranker.to_json())
    return path


def test_questions_the_ranking_was_fitted_on_are_ranked_by_held_out_folds(
    settings, tmp_path, monkeypatch
):
    import hashlib

    questions = b'{"id": "q1", "question": "Who?", "answers": ["x"]}\n'
    digest = hashlib.sha256(questions).hexdigest()[:12]
    folds = tmp_path / "folds"
    folds.mkdir()
    monkeypatch.setattr(rag_eval.heldout, "RANKER_FOLDS", folds)
    settings.ranker_model = _tree_model(
        tmp_path / "shipped.json", questions_sha256_12=digest, n_questions=7
    )
    # no fold models: the figures are in-sample, and the note says so
    ranker, note = held_out_ranking(questions, settings)
    assert ranker is None and "fitted on these questions (7 of them" in note
    assert "not held out" in note and "evals/reports/ranker" in note
    for k, ids in ((1, ["q1"]), (2, ["q2"])):
        _tree_model(folds / f"fold-{k}.json", questions_sha256_12=digest, question_ids=ids)
    _tree_model(folds / "fold-3.json", questions_sha256_12="other", question_ids=[])
    ranker, note = held_out_ranking(questions, settings)
    assert isinstance(ranker, HeldOutRanker) and len(ranker.folds) == 2  # not the other file's
    assert "2 folds" in note and "never on it" in note
    assert held_out_ranking(questions + b"\n", settings) == (None, None)


def test_the_eval_tells_the_held_out_ranking_each_question(
    data, eval_settings, tmp_path, monkeypatch
):
    import hashlib

    digest = hashlib.sha256(data["questions"].read_bytes()).hexdigest()[:12]
    folds = tmp_path / "folds"
    folds.mkdir()
    monkeypatch.setattr(rag_eval.heldout, "RANKER_FOLDS", folds)
    eval_settings.ranker_model = _tree_model(tmp_path / "m.json", questions_sha256_12=digest)
    for k, ids in ((1, ["q1"]), (2, ["q2", "q3"])):
        _tree_model(folds / f"fold-{k}.json", questions_sha256_12=digest, question_ids=ids)
    told: list[tuple[str, int]] = []
    original = HeldOutRanker.hold_out

    def hold_out(self, question_id):
        original(self, question_id)
        told.append((question_id, self.folds.index(self.current)))

    monkeypatch.setattr(HeldOutRanker, "hold_out", hold_out)
    engines: list = []
    assert run_eval(data, eval_settings, "--retrieval-only", engines=engines) == 0
    assert told == [("q1", 1), ("q2", 0), ("q3", 0)]
    assert isinstance(engines[0].retriever.reranker(), HeldOutRanker)
    report = next((tmp_path / "reports").rglob("*.md")).read_text()
    assert "ranked by one of its fold models" in report

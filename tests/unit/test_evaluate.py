"""`rag eval` with a scripted LLM and a bag-of-words embedder over a tiny hand-checked corpus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import FakeEmbedding, FakeLLM

from rag import evaluate
from rag.answer import Engine
from rag.cli import build_parser
from rag.events import Passage
from rag.store import KnowledgeBase

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

    return evaluate.main(args, settings, make_engine=make_engine)


def last_json(capsys) -> dict:
    out = capsys.readouterr().out
    return json.loads(out.strip().splitlines()[-1])


def test_eval_loop_measures_retrieval_answers_refusals_and_citations(data, eval_settings, capsys):
    assert run_eval(data, eval_settings, "--no-baseline") == 0
    summary = last_json(capsys)
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


def test_check_gate_bounds_and_unmeasured_metrics():
    checks = evaluate.check_gate(
        {"hits@4": 0.8, "errors": 0},
        {"hits@4": 0.8, "errors_max": 0, "answer_accuracy_min": 0.1},
    )
    assert [ok for ok, _ in checks] == [True, True, False]
    assert "not measured" in checks[2][1]


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


def test_retrieval_measures_hand_checked():
    q = evaluate.Question(
        id="q",
        text="?",
        answers=["x"],
        answerable=True,
        question_type="t",
        gold_doc_ids=["a", "b"],
        facts=["fact one", "fact two"],
    )
    ranked = [("c", "nothing"), ("a", "has fact one"), ("c", "x"), ("b", "fact  two here")]
    m = evaluate.retrieval_measures(q, ranked)
    assert m["hits@4"] == 1.0 and m["mrr@10"] == 0.5 and m["first_relevant_rank"] == 2
    assert m["map@10"] == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert m["evidence_recall@10"] == 1.0 and m["all_gold_docs@10"] == 1.0
    unanswerable = evaluate.Question("u", "?", [], False, "t", [], [])
    assert evaluate.retrieval_measures(unanswerable, ranked) is None


class ScriptedJudge(evaluate.Judge):
    """Supported iff every needed word is in the passages given."""

    def __init__(self) -> None:
        super().__init__(llm=None)

    def supported(self, passages, claim):
        self.calls += 1
        text = " ".join(p.text for p in passages)
        return all(word in text for word in ("Lopez", "1998") if word in claim)


def passage(n: int, text: str) -> Passage:
    return Passage(n=n, chunk_id=f"c{n}", doc_id="d", title="t", text=text, start=0, end=0)


def test_alce_citation_precision_counts_needed_citations_only():
    passages = [passage(1, "Maria Lopez"), passage(2, "in 1998"), passage(3, "Lopez 1998")]
    judge = ScriptedJudge()
    # needs [1] and [2] together: neither supports it alone, removing either loses support
    out = evaluate.judge_citations(judge, "Lopez founded it in 1998 [1][2].", passages)
    assert out["citation_recall"] == 1.0 and out["citation_precision"] == 1.0
    # [3] supports it alone; [2] does not, and without it [3] still does -> [2] irrelevant
    out = evaluate.judge_citations(judge, "Lopez founded it in 1998 [2][3]. Uncited.", passages)
    assert out["citation_recall"] == 0.5  # the uncited sentence is unsupported
    assert out["citation_precision"] == 0.5
    # a citation naming no shown passage never counts
    out = evaluate.judge_citations(judge, "Lopez founded it [9].", passages)
    assert out["citation_recall"] == 0.0 and out["citation_precision"] == 0.0


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [("YES", True), ("no.", False), (" Yes, it is.", True), ("**NO**", False), ("maybe", None)],
)
def test_judge_verdict_parsing(reply, verdict):
    assert evaluate.parse_verdict(reply) is verdict


def test_judge_asks_the_llm_with_the_judge_prompt():
    llm = FakeLLM("YES", "nope")
    judge = evaluate.Judge(llm)
    assert judge.supported([passage(1, "Maria Lopez founded it.")], "Lopez founded it.") is True
    assert judge.supported([passage(1, "x")], "y") is False and judge.unparsed == 1
    user = llm.calls[0][-1]["content"]
    assert "Maria Lopez founded it." in user and "Claim: Lopez founded it." in user


def test_stratified_sample_is_fixed_and_proportional():
    questions = [
        evaluate.Question(f"q{i}", "?", ["a"], True, t, [], [])
        for i, t in enumerate(["a"] * 60 + ["b"] * 30 + ["c"] * 10)
    ]
    sample = evaluate.stratified_sample(questions, 10, seed=1)
    assert [q.question_type for q in sample].count("a") == 6
    assert [q.question_type for q in sample].count("c") == 1
    assert sample == evaluate.stratified_sample(questions, 10, seed=1)
    assert sample != evaluate.stratified_sample(questions, 10, seed=2)
    assert [q.id for q in sample] == sorted((q.id for q in sample), key=lambda i: int(i[1:]))
    assert len(evaluate.stratified_sample(questions, 2, seed=0)) == 2


@pytest.mark.parametrize(
    ("answer", "golds", "substring", "words"),
    [
        ("It was announced on Friday.", ["No"], 1.0, 0.0),
        ("No, Moscow rejected it [1].", ["No"], 1.0, 1.0),
        ("The Kremlin.", ["the Kremlin"], 1.0, 1.0),
        ("1,000 prisoners", ["1000"], 1.0, 1.0),
    ],
)
def test_whole_word_accuracy_next_to_substring_accuracy(answer, golds, substring, words):
    from rag.metrics import answer_accuracy

    assert answer_accuracy(answer, golds) == substring
    assert evaluate.contains_words(answer, golds) == words


@pytest.mark.parametrize(
    ("value", "date"),
    [
        ("2023-11-27 08:45:59.000000000Z", "2023-11-27"),
        ("2023-09-26T21:11:15+00:00", "2023-09-26"),
        ("2025-05-23", "2025-05-23"),
        ("May 23, 2025", "2025-05-23"),
        ("", None),
        ("someday", None),
    ],
)
def test_published_dates_are_normalised(value, date):
    assert evaluate.normalise_date(value) == date


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
    baseline = evaluate.Baseline(engines[0], engines[0].settings, llm)
    questions = [evaluate.Question.from_record(q, i) for i, q in enumerate(QUESTIONS)]
    rows = [baseline.row(q) for q in questions]
    assert "Source 1:" in llm.prompts[0] and "Riverside bakery" in llm.prompts[0]
    assert len(rows[0]["passages"]) == 3  # similarity_top_k=3 of three one-chunk documents
    assert rows[0]["accuracy"] == 1.0 and rows[0]["citation_valid"] is True
    assert rows[1]["accuracy"] == 1.0 and rows[1]["citation_valid"] is False
    assert rows[2]["refused"] is True and rows[2]["correct"] is True
    assert rows[0]["retrieval"]["hits@10"] == 1.0 and rows[2]["retrieval"] is None
    assert {"retrieval_ms", "first_token_ms", "total_ms"} <= set(rows[0]["timings"])
    summary = evaluate.summarize(rows, full=True)
    assert summary["citation_validity"] == 0.5 and summary["refusal_rate_unanswerable"] == 1.0


@pytest.mark.parametrize(
    ("answer", "golds", "words"),
    [
        ("Yes. Both reported it [1][2].", ["Yes"], 1.0),
        ("No. Only Fortune reported it [1].", ["Yes"], 0.0),
        ('Yes. The report said "No. 3 Michigan beat Penn State" [2].', ["no"], 0.0),
        ("It is not clear whether yes or no.", ["yes"], 0.0),
    ],
)
def test_yes_no_gold_must_be_the_verdict(answer, golds, words):
    assert evaluate.contains_words(answer, golds) == words


def test_ingest_speed_is_reported_only_when_chunks_were_written():
    from rag.evaluate import _ingest_speed

    assert _ingest_speed({"added": 0, "chunks": 0, "seconds": 0.4}) == ""
    assert (
        _ingest_speed({"chunks": 1000, "seconds": 8.0, "keyword_index_seconds": 2.2})
        == " in 8 s (125.0 chunks/s); keyword indexes built in 2 s"
    )


def test_the_recording_llm_hands_prefix_caching_to_the_model():
    from fakes import PrimingLLM

    from rag.evaluate import RecordingLLM

    prefix = [{"role": "system", "content": "fixed"}, {"role": "user", "content": "x"}]
    priming = PrimingLLM()
    RecordingLLM(priming).prime(prefix)
    assert priming.primed == [prefix] and priming.calls == []
    plain = FakeLLM("ok")
    RecordingLLM(plain).prime(prefix)  # no prime of its own: asked for one token
    assert plain.calls == [prefix]


def _tree_model(path: Path, **trained_on) -> Path:
    """A small LambdaMART model over the real features, saved with this training record."""
    import numpy as np

    from rag.rank import FEATURES, fit_lambdamart

    rng = np.random.default_rng(len(path.name))
    groups = [(rng.normal(size=(6, len(FEATURES))), np.arange(6) == 0) for _ in range(20)]
    ranker = fit_lambdamart(groups, trained_on, rounds=3, num_leaves=3, min_data_in_leaf=5)
    path.write_text(ranker.to_json())
    return path


def test_questions_the_ranking_was_fitted_on_are_ranked_by_held_out_folds(
    settings, tmp_path, monkeypatch
):
    import hashlib

    from rag.rank import HeldOutRanker

    questions = b'{"id": "q1", "question": "Who?", "answers": ["x"]}\n'
    digest = hashlib.sha256(questions).hexdigest()[:12]
    folds = tmp_path / "folds"
    folds.mkdir()
    monkeypatch.setattr(evaluate, "RANKER_FOLDS", folds)
    settings.ranker_model = _tree_model(
        tmp_path / "shipped.json", questions_sha256_12=digest, n_questions=7
    )
    # no fold models: the figures are in-sample, and the note says so
    ranker, note = evaluate.held_out_ranking(questions, settings)
    assert ranker is None and "fitted on these questions (7 of them" in note
    assert "not held out" in note and "evals/reports/ranker" in note
    for k, ids in ((1, ["q1"]), (2, ["q2"])):
        _tree_model(folds / f"fold-{k}.json", questions_sha256_12=digest, question_ids=ids)
    _tree_model(folds / "fold-3.json", questions_sha256_12="other", question_ids=[])
    ranker, note = evaluate.held_out_ranking(questions, settings)
    assert isinstance(ranker, HeldOutRanker) and len(ranker.folds) == 2  # not the other file's
    assert "2 folds" in note and "never on it" in note
    assert evaluate.held_out_ranking(questions + b"\n", settings) == (None, None)


def test_the_eval_tells_the_held_out_ranking_each_question(
    data, eval_settings, tmp_path, monkeypatch
):
    import hashlib

    from rag.rank import HeldOutRanker

    digest = hashlib.sha256(data["questions"].read_bytes()).hexdigest()[:12]
    folds = tmp_path / "folds"
    folds.mkdir()
    monkeypatch.setattr(evaluate, "RANKER_FOLDS", folds)
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
    assert isinstance(engines[0].retriever.ranker(), HeldOutRanker)
    report = next((tmp_path / "reports").rglob("*.md")).read_text()
    assert "ranked by one of its fold models" in report

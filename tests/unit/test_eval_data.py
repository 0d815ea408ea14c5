"""The eval's inputs (rag_eval.data, rag_eval.gates): question and corpus records, fixed samples,
dates, the eval's own collection name, and gate files."""

from __future__ import annotations

import json

import pytest

from rag_eval.data import (
    EvalError,
    Question,
    collection_name,
    corpus_document,
    normalise_date,
    read_jsonl,
    stratified_sample,
)
from rag_eval.gates import check_gate, load_gate


def test_stratified_sample_is_fixed_and_proportional():
    questions = [
        Question(f"q{i}", "?", ["a"], True, t, [], [])
        for i, t in enumerate(["a"] * 60 + ["b"] * 30 + ["c"] * 10)
    ]
    sample = stratified_sample(questions, 10, seed=1)
    assert [q.question_type for q in sample].count("a") == 6
    assert [q.question_type for q in sample].count("c") == 1
    assert sample == stratified_sample(questions, 10, seed=1)
    assert sample != stratified_sample(questions, 10, seed=2)
    assert [q.id for q in sample] == sorted((q.id for q in sample), key=lambda i: int(i[1:]))
    assert len(stratified_sample(questions, 2, seed=0)) == 2


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
    assert normalise_date(value) == date


def test_a_question_record_in_the_multihop_format():
    q = Question.from_record(
        {
            "question": "Who?",
            "answers": ["Lopez", 1998],
            "question_type": "inference_query",
            "gold_doc_ids": ["bakery"],
            "evidence": [{"doc_id": "bakery", "fact": "founded by Lopez"}, {"doc_id": "x"}],
            "history": [{"question": "Which bakery?", "answer": "Riverside."}],
        },
        7,
    )
    assert (q.id, q.text, q.answers, q.answerable) == ("q0007", "Who?", ["Lopez", "1998"], True)
    assert q.facts == ["founded by Lopez"] and q.gold_doc_ids == ["bakery"]
    assert [(t.question, t.answer) for t in q.history] == [("Which bakery?", "Riverside.")]
    unanswerable = Question.from_record({"id": "u", "question": "?", "answers": []}, 0)
    assert unanswerable.answerable is False and unanswerable.question_type == "unknown"


def test_corpus_records_are_cleaned_like_ingested_files():
    document = corpus_document(
        {"doc_id": "d", "text": "Bus line 7 runs every ten minutes.", "published_at": "2024/01/02"}
    )
    assert document.doc_id == "d" and document.published == "2024-01-02"
    assert document.title.startswith("Bus line 7") and document.title_from_text
    with pytest.raises(EvalError, match="without doc_id"):
        corpus_document({"text": "no id"})


def test_the_eval_collection_is_named_by_corpus_and_index_settings(settings):
    name = collection_name(b"corpus", settings)
    assert name.startswith("eval-") and name == collection_name(b"corpus", settings)
    assert collection_name(b"other", settings) != name
    bigger = settings.model_copy(update={"chunk_size": settings.chunk_size * 2})
    assert collection_name(b"corpus", bigger) != name
    faster = settings.model_copy(update={"llm_max_tokens": 7})  # not an index setting
    assert collection_name(b"corpus", faster) == name


def test_bad_jsonl_names_the_line(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"question": "ok"}\n\n{not json\n')
    with pytest.raises(EvalError, match=r"q\.jsonl:3: not valid JSON"):
        read_jsonl(path)
    with pytest.raises(EvalError, match="no such file"):
        read_jsonl(tmp_path / "missing.jsonl")


def test_check_gate_bounds_and_unmeasured_metrics():
    checks = check_gate(
        {"hits@4": 0.8, "errors": 0},
        {"hits@4": 0.8, "errors_max": 0, "answer_accuracy_min": 0.1},
    )
    assert [ok for ok, _ in checks] == [True, True, False]
    assert "not measured" in checks[2][1]


def test_gate_files_are_thresholds_with_comments(tmp_path):
    path = tmp_path / "gate.json"
    path.write_text(json.dumps({"_comment": "x", "hits@4": 0.5, "errors_max": 0}))
    assert load_gate(path) == {"hits@4": 0.5, "errors_max": 0.0}
    bad_files = (("[1]", "JSON object"), ("{", "not valid JSON"), ('{"a": true}', "number"))
    for bad, problem in bad_files:
        path.write_text(bad)
        with pytest.raises(EvalError, match=problem):
            load_gate(path)
    with pytest.raises(EvalError, match="cannot read gate file"):
        load_gate(tmp_path / "missing.json")

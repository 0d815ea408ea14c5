"""`rag eval`: retrieval, answers, refusals, citations and latency of the same `Engine.answer()`
the page uses, side by side with llama-index's own `CitationQueryEngine`.

The corpus is ingested into a collection of its own, named by a hash of the corpus content and
the chunking/embedding settings, so it never mixes with the user's documents and a re-run finds
it already built. Output: reports in `--out`, one line appended to the history, optional gate
checks, and, last on stdout, one JSON object of the summary.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rag.answer import Engine
from rag.compose import build_engine, judge_endpoint
from rag.config import Settings
from rag.ingest import LoadedDocument
from rag.llm import LLM, OpenAICompatibleLLM
from rag.llm.openai_compatible import llama_index_llm
from rag_eval.baseline import BASELINE_TOP_K, Baseline
from rag_eval.data import (
    SEED_DIR,
    EvalError,
    Question,
    collection_name,
    corpus_of,
    question_key,
    read_jsonl,
    stratified_sample,
)
from rag_eval.evidence import EvidenceRemovingRetriever, evidence_removed
from rag_eval.gates import check_gate, load_gate
from rag_eval.heldout import held_out_ranking, held_out_short_ranking, held_out_verifier
from rag_eval.judge import Judge, judge_rows
from rag_eval.metrics import per_type, summarize
from rag_eval.provenance import code_fingerprint, git_commit, load_average, settings_snapshot
from rag_eval.report import Results, RunInfo, write_report
from rag_eval.runners import run_questions

DEFAULT_HISTORY = Path("evals/history.jsonl")
ACCURACY_NOTE = (
    "Answer accuracy: a normalised gold answer is a substring of the answer (citation marks "
    "removed); F1 is SQuAD token F1. Citation validity: share of non-refused answers with at "
    "least one citation, all naming shown passages. Citation recall and precision follow ALCE, "
    "judged by an LLM with prompts/judge.txt."
)

EVIDENCE_NOTE = (
    "Evidence removed: each answerable question is asked with every passage holding its answer "
    "taken away (rag_eval/evidence.py); the honest answer is a refusal, so these questions count "
    "as unanswerable."
)


def dataset_name(corpus: Path | None) -> str:
    if corpus is None:
        return "seed"
    if corpus.is_dir():  # --docs: evals/realdocs/docs -> realdocs
        return corpus.parent.name if corpus.name == "docs" else corpus.name
    return corpus.parent.name if corpus.stem == "corpus" else corpus.stem


def main(
    args: argparse.Namespace,
    settings: Settings,
    make_engine: Callable[[Settings], Engine] | None = None,
) -> int:
    """`rag eval`; returns the exit status (1 when a gate check fails)."""
    try:
        return run(args, settings, make_engine or build_engine)
    except EvalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def load_questions(args: argparse.Namespace, path: Path) -> list[Question]:
    questions = [Question.from_record(r, i) for i, r in enumerate(read_jsonl(path))]
    if getattr(args, "sample", None):
        questions = stratified_sample(questions, args.sample, getattr(args, "seed", 0) or 0)
    if args.limit:
        questions = questions[: args.limit]
    if not questions:
        raise EvalError(f"no questions in {path}")
    return questions


def report_name(args: argparse.Namespace, dataset: str, full: bool) -> str:
    sample, seed = getattr(args, "sample", None), getattr(args, "seed", 0) or 0
    return getattr(args, "name", None) or "-".join(
        [dataset]
        + (["retrieval"] if not full else [])
        + ([f"sample{sample}-seed{seed}"] if sample else [])
        + ([f"limit{args.limit}"] if args.limit else [])
    )


def ingest_corpus(engine: Engine, documents: list[LoadedDocument]) -> tuple[Any, float]:
    """The corpus into the eval's collection (documents already there are skipped)."""
    from tqdm import tqdm

    bar = tqdm(total=len(documents), desc="ingesting corpus", unit="doc", file=sys.stderr)

    def progress(done: int, total: int, doc_id: str) -> None:
        bar.n = done
        bar.refresh()

    started = time.perf_counter()
    try:
        report = engine.kb.add_documents(documents, progress=progress)
    finally:
        bar.close()
    print(
        f"collection {engine.settings.collection}: {len(report.added)} added, "
        f"{len(report.updated)} updated, {len(report.unchanged)} unchanged",
        file=sys.stderr,
    )
    return report, time.perf_counter() - started


def endpoint_of(llm: LLM | None):
    """The OpenAI-compatible endpoint behind the answering LLM (None for other models)."""
    return llm.endpoint if isinstance(llm, OpenAICompatibleLLM) else None


def make_baseline(engine: Engine, settings: Settings, full: bool, llm: LLM | None, notes: list):
    """(baseline, its description), or (None, None) when it cannot run here."""
    endpoint = endpoint_of(llm)
    if full and endpoint is None:
        notes.append("Baseline skipped: the LLM is not an OpenAI-compatible endpoint.")
        return None, None
    li_llm = (
        llama_index_llm(endpoint, settings.llm_max_tokens, settings.local_llm_ctx)
        if full and endpoint is not None
        else None
    )
    if full:
        name = (
            f"{Baseline.name} (similarity_top_k={BASELINE_TOP_K}, same Chroma collection, "
            "MiniLM embedder and LLM endpoint; no chat history, so follow-ups go in as "
            "asked). Questions alternate between rag and the baseline."
        )
    else:
        name = (
            "llama-index VectorStoreIndex dense retriever (top 10) over the same "
            "collection and embedder, no BM25, no fusion"
        )
    return Baseline(engine, li_llm), name


def judge_all(
    settings: Settings, llm: LLM, rows: list, baseline_rows: list | None
) -> dict[str, Any]:
    """ALCE citation recall/precision of every answer, by the configured judge."""
    endpoint = judge_endpoint(settings)
    judge_llm: LLM = OpenAICompatibleLLM(endpoint) if endpoint is not None else llm
    answering = endpoint_of(llm)
    model = (
        endpoint.model
        if endpoint is not None
        else answering.model
        if answering is not None
        else llm.description
    )
    judge = Judge(judge_llm)
    judge_rows(judge, rows, "rag")
    if baseline_rows and any("answer" in r for r in baseline_rows):
        judge_rows(judge, baseline_rows, "baseline")
    return {
        "model": model,
        "calls": judge.calls,
        "unparsed": judge.unparsed,
        "errors": judge.errors,
    }


def run(args: argparse.Namespace, settings: Settings, make_engine: Callable) -> int:
    docs = getattr(args, "docs", None)
    if docs is not None and args.corpus is not None:
        raise EvalError("give --corpus or --docs, not both")
    source = docs or args.corpus
    if (source is None) != (args.questions is None):
        raise EvalError(
            "give --questions with --corpus or --docs, or none of them (the seed golden set)"
        )
    corpus_path = source or SEED_DIR / "corpus.jsonl"
    questions_path = args.questions or SEED_DIR / "questions.jsonl"
    gate_path = getattr(args, "gate", None)
    gate = load_gate(gate_path) if gate_path else None
    full = not args.retrieval_only
    documents, corpus_bytes = (
        corpus_of(docs, folder=True) if docs is not None else corpus_of(corpus_path)
    )
    questions = load_questions(args, questions_path)
    removing = getattr(args, "evidence_removed", False)
    if removing:
        questions = evidence_removed(questions)
        if not questions:
            raise EvalError(f"no answerable questions in {questions_path} to remove evidence of")
    dataset = dataset_name(source)
    name = report_name(args, dataset, full) + ("-evidence-removed" if removing else "")

    eval_settings = settings.model_copy(
        update={"collection": collection_name(corpus_bytes, settings)}
    )
    engine = make_engine(eval_settings)
    ingest, ingest_s = ingest_corpus(engine, documents)

    notes: list[str] = []
    before_each: list[Callable[[Question], None]] = []
    if removing:
        remover = EvidenceRemovingRetriever(eval_settings, engine.kb, engine.retriever)
        engine.retriever = remover
        before_each.append(lambda q: remover.remove_evidence_of(q, q.gold_sections))
        notes.append(EVIDENCE_NOTE)
    verifier, note = held_out_verifier(dataset, questions, engine.verifier)
    if note:
        notes.append(note)
    if verifier is not None:
        engine.verifier = verifier
        before_each.append(lambda q: verifier.hold_out(question_key(dataset, q.id)))
    held_out, note = held_out_ranking(questions_path.read_bytes(), settings)
    if note:
        notes.append(note)
    if held_out is not None:
        engine.retriever.use_reranker(held_out)
        before_each.insert(0, lambda q: held_out.hold_out(q.id))
    llm = engine.llm if full else None  # starts or connects to the model now, not mid-run
    index_started = time.perf_counter()
    engine.retriever.keyword_indexes()  # built once per corpus version, else loaded
    index_s = time.perf_counter() - index_started
    if full and endpoint_of(llm) is not None:
        engine.warm_up()  # the page warms up too: cached prompt prefix
    # after the warm-up, whose search is no question of the set: from here each short question
    # is ranked by a fold model that never saw it
    held_out_short, note = held_out_short_ranking(questions_path.read_bytes(), settings)
    if note:
        notes.append(note)
    if held_out_short is not None:
        engine.retriever.use_short_reranker(held_out_short)
        before_each.insert(0, lambda q: held_out_short.hold_out(q.id))

    baseline, baseline_name = (
        make_baseline(engine, settings, full, llm, notes)
        if getattr(args, "baseline", True)
        else (None, None)
    )
    load_start = load_average()
    rows, baseline_rows, keyword_rows = run_questions(
        engine, questions, full, baseline, before_each
    )
    load = {"cpus": os.cpu_count(), "start": load_start, "end": load_average()}

    judge_info = None
    if full and getattr(args, "judge", True):
        assert llm is not None
        judge_info = judge_all(settings, llm, rows, baseline_rows)

    summary = summarize(rows, full)
    types = per_type(rows, full)
    base_summary = summarize(baseline_rows, full) if baseline_rows else None
    base_types = per_type(baseline_rows, full) if baseline_rows else None
    keyword = {"summary": summarize(keyword_rows, False), "per_type": per_type(keyword_rows, False)}
    if full:
        notes.append(ACCURACY_NOTE)
    info = RunInfo(
        name=name,
        dataset=dataset,
        command=shlex.join(sys.argv) if sys.argv and sys.argv[0] else "rag eval",
        corpus=corpus_path,
        questions=questions_path,
        collection=eval_settings.collection,
        full=full,
        baseline_name=baseline_name,
        settings=settings_snapshot(settings),
        commit=git_commit(),
        code=code_fingerprint(),
        timestamp=datetime.now(UTC).isoformat(timespec="seconds"),
        ingest={
            "added": len(ingest.added) + len(ingest.updated),
            "unchanged": len(ingest.unchanged),
            "chunks": ingest.chunks,
            "seconds": round(ingest_s, 1),
            "keyword_index_seconds": round(index_s, 1),
        },
        judge=judge_info,
        notes=notes,
        load=load,
    )
    theirs = Results(base_summary, base_types, baseline_rows) if baseline_rows else None
    report = write_report(args.out, info, Results(summary, types, rows), theirs, keyword)
    print(f"report: {report} (and .html, .json)", file=sys.stderr)

    checks = check_gate(summary, gate) if gate is not None else []
    entry = history_entry(args, info, questions_path, load, summary, base_summary, keyword)
    entry["gate"] = None if gate is None else all(ok for ok, _ in checks)
    entry["report"] = str(report)
    history_path = getattr(args, "history", None) or DEFAULT_HISTORY
    history_path.parent.mkdir(parents=True, exist_ok=True)
    with history_path.open("a", encoding="utf-8") as history:
        history.write(json.dumps(entry, ensure_ascii=False) + "\n")

    for _, line in checks:
        print(line)
    final = {"dataset": dataset, "mode": entry["mode"], **summary, "baseline": base_summary}
    if gate is not None:
        final["gate_passed"] = entry["gate"]
    print(json.dumps(final, ensure_ascii=False), flush=True)
    return 0 if all(ok for ok, _ in checks) else 1


def history_entry(
    args: argparse.Namespace,
    info: RunInfo,
    questions_path: Path,
    load: dict,
    summary: dict,
    base_summary: dict | None,
    keyword: dict,
) -> dict[str, Any]:
    sample = getattr(args, "sample", None)
    return {
        "timestamp": info.timestamp,
        "commit": info.commit,
        "code": info.code,
        "dataset": info.dataset,
        "mode": "full" if info.full else "retrieval",
        "questions_file": str(questions_path),
        "sample": sample,
        "seed": (getattr(args, "seed", 0) or 0) if sample else None,
        "limit": args.limit,
        "command": info.command,
        "collection": info.collection,
        "settings": info.settings,
        "load_average": load,
        "summary": summary,
        "baseline": base_summary,
        "bm25_only": keyword["summary"],
    }

"""Latency benchmark for the issue "Fast answers on a 2-core CPU".

    .venv/bin/python benchmarks/latency.py [--quick] [--out benchmarks/results]

Measures rag with its shipped models (Qwen2.5-Coder-1.5B GGUF behind rag's local xllamacpp
server, MiniLM ONNX embedder) and, on the same model server and embedder, llama-index's default
pipeline (`VectorStoreIndex.from_documents` + `as_query_engine(streaming=True)`):

1. seed corpus: cold start of `rag serve` (to "ready at" and to a first answer through the `ask`
   API), then warm, in-process: the seed question and a follow-up, retrieval over the golden
   questions, ingest speed;
2. the seed question through llama-index's default pipeline;
3. MultiHop-RAG dev: ingest speed, retrieval over the questions, and a fixed stratified sample of
   questions through both systems, interleaved question by question (TTFT, total, accuracy);
4. peak memory.

Writes latency.md (with the exact command and the machine), latency.json and latency.png into
--out. `--quick` is a smoke test (few repetitions, 10 MultiHop questions, 60 articles); its
numbers are not benchmark results. While running, what is measured so far is kept in
latency.partial.json (removed when the report is written).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# rag first: importing it sets the offline environment before other libraries load.
from rag.events import Final, Token, Turn  # noqa: E402
from rag.metrics import is_refusal_text, percentile  # noqa: E402

SEED_DIR = REPO / "seeds"
SEED_QUESTIONS = REPO / "evals" / "seed" / "questions.jsonl"
MULTIHOP = Path("/work/shared/datasets/multihop-rag")
SEED_QUESTION = "Who led Russia's delegation?"
FOLLOW_UP = "What did he say both sides agreed to?"
TTFT_GOAL = 3.0  # llama-index's median TTFT / rag's, on MultiHop
SAMPLE_SEED = 2024


@dataclass(frozen=True)
class Plan:
    mode: str
    reps: int  # repetitions of the seed question and of the follow-up
    mh_questions: int  # MultiHop questions answered by both systems
    mh_articles: int | None  # None: the whole corpus
    mh_retrieval_questions: int | None  # None: every dev question


# 200 articles (the gold documents of the 50 questions first): about 10,000 chunks, the size the
# issue's retrieval target names, and an ingest long enough to measure throughput.
FULL = Plan("full", reps=7, mh_questions=50, mh_articles=200, mh_retrieval_questions=300)
QUICK = Plan("quick", reps=2, mh_questions=10, mh_articles=60, mh_retrieval_questions=200)


# ------------------------------------------------------------------------------ small helpers


def log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def p50_p95(values: Sequence[float]) -> dict[str, float | int | None]:
    if not values:
        return {"p50_ms": None, "p95_ms": None, "n": 0}
    return {"p50_ms": percentile(values, 50), "p95_ms": percentile(values, 95), "n": len(values)}


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def is_correct(answer: str, refused: bool, golds: Sequence[str], answerable: bool) -> bool:
    """MultiHop accuracy as `rag eval` reports it (whole words; a Yes/No gold must be the
    answer's first word, so "not" or a quoted "No. 3" do not count as "No"), citation marks
    removed; for an unanswerable question (null_query) a refusal is the correct answer."""
    from rag.evaluate import contains_words

    refused = refused or is_refusal_text(answer)
    if not answerable:
        return refused
    bare = re.sub(r"\[\s*\d+(?:\s*[,;\-\u2013]\s*\d+)*\s*\]", "", answer)
    return not refused and contains_words(bare, golds) == 1.0


def pick_articles(
    records: Sequence[dict[str, Any]], needed: Sequence[str], n: int | None, seed: int
) -> list[dict[str, Any]]:
    """n articles: the needed ones (gold documents of the sampled questions) first, then a fixed
    random fill; the corpus order is kept. None or n >= corpus size: the whole corpus."""
    if n is None or n >= len(records):
        return list(records)
    known = {r["doc_id"] for r in records}
    chosen = list(dict.fromkeys(d for d in needed if d in known))[:n]
    rest = sorted(r["doc_id"] for r in records if r["doc_id"] not in chosen)
    chosen += random.Random(seed).sample(rest, n - len(chosen))
    keep = set(chosen)
    return [r for r in records if r["doc_id"] in keep]


def interleaved_order(index: int) -> tuple[str, str]:
    """Which system answers first for question `index`: alternate, so neither always goes first."""
    return ("rag", "llamaindex") if index % 2 == 0 else ("llamaindex", "rag")


# ------------------------------------------------------------------------------ machine


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    from rag.evaluate import git_commit

    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model(),
        "ram_gb": round(pages / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(REPO),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def peak_memory() -> dict[str, float]:
    """Peak resident set size in MB (Linux reports kilobytes). Children: waited-for ones only,
    i.e. the `rag serve` of the cold start."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"self_peak_rss_mb": round(own, 1), "children_peak_rss_mb": round(children, 1)}


# ------------------------------------------------------------------------------ timed answers


@dataclass
class Run:
    """One answered question. ttft: to the first streamed text (or the whole answer when none
    streamed, e.g. a refusal without a model call); total: to the end of the answer."""

    ttft_ms: float | None
    total_ms: float
    answer: str
    refused: bool
    prompt_tokens: int | None
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def time_rag(engine: Any, calls: Any, question: str, history: Sequence[Turn] = ()) -> Run:
    calls.reset()
    started = time.perf_counter()
    first = None
    result = None
    for event in engine.answer(question, history):
        if first is None and isinstance(event, Token) and event.text:
            first = ms_since(started)
        elif isinstance(event, Final):
            result = event.result
    total = ms_since(started)
    assert result is not None
    return Run(
        ttft_ms=None if result.error else (first if first is not None else total),
        total_ms=total,
        answer=result.answer,
        refused=result.refused,
        prompt_tokens=result.tokens.get("prompt"),
        error=result.error,
        detail={
            "engine_timings_ms": {k: round(v, 1) for k, v in result.timings.items()},
            "question_used": result.question_used,
            "llm_calls": len(calls.messages),
        },
    )


def make_call_log() -> Any:
    """Records the chat messages of every LLM call since the last `reset()`, through
    llama-index's instrumentation (rag's LLM client is llama-index's OpenAILike too). So the
    baseline's prompts are counted exactly as rag counts its own (tiktoken cl100k)."""
    from llama_index.core.instrumentation import get_dispatcher
    from llama_index.core.instrumentation.event_handlers import BaseEventHandler
    from llama_index.core.instrumentation.events.llm import LLMChatStartEvent
    from pydantic import Field

    class CallLog(BaseEventHandler):
        messages: list[list[Any]] = Field(default_factory=list)  # one list per call

        @classmethod
        def class_name(cls) -> str:
            return "CallLog"

        def reset(self) -> None:
            self.messages = []

        def handle(self, event: Any, **kwargs: Any) -> None:
            if isinstance(event, LLMChatStartEvent):
                self.messages.append(list(event.messages))

    calls = CallLog()
    get_dispatcher().add_event_handler(calls)
    return calls


def time_llamaindex(query_engine: Any, calls: Any, question: str) -> Run:
    """The streamed answer of llama-index's query engine; prompt tokens are summed over all its
    LLM calls (the model reads all of them before the last one streams)."""
    from rag.answer import count_tokens

    calls.reset()
    started = time.perf_counter()
    first = None
    pieces: list[str] = []
    error = None
    try:
        response = query_engine.query(question)
        for piece in response.response_gen:
            if piece and first is None:
                first = ms_since(started)
            pieces.append(piece)
    except Exception as exc:  # a failed baseline answer is reported, not fatal
        error = f"{type(exc).__name__}: {exc}"
    total = ms_since(started)
    answer = "".join(pieces).strip()
    prompt = sum(count_tokens(m.content or "") for call in calls.messages for m in call)
    return Run(
        ttft_ms=None if error else (first if first is not None else total),
        total_ms=total,
        answer=answer,
        refused=is_refusal_text(answer),
        prompt_tokens=prompt or None,
        error=error,
        detail={"llm_calls": len(calls.messages)},
    )


def summarize_runs(runs: Sequence[Run]) -> dict[str, Any]:
    ok = [r for r in runs if not r.error]
    return {
        "n": len(runs),
        "errors": len(runs) - len(ok),
        "ttft_ms_median": median(r.ttft_ms for r in ok),
        "total_ms_median": median(r.total_ms for r in ok),
        "ttft_ms_first": ok[0].ttft_ms if ok else None,
        "total_ms_first": ok[0].total_ms if ok else None,
        "prompt_tokens_median": median(r.prompt_tokens for r in ok),
        "llm_calls_median": median(r.detail.get("llm_calls") for r in ok),
        "runs": [asdict(r) for r in runs],
    }


# ------------------------------------------------------------------------------ systems


def bench_settings(data_dir: Path, gguf: Path, collection: str = "documents") -> Any:
    """The shipped models, this run's own data dir and its own in-process model server (a free
    shared-server port, so a `rag llm-server` someone else runs is never used). No silent LLM
    retries: a retried request would hide in the timings."""
    from rag.config import Settings

    return Settings(
        data_dir=data_dir,
        collection=collection,
        local_llm_gguf=gguf,
        local_llm_port=free_port(),
        llm_base_url=None,
        embed_base_url=None,
        llm_timeout=600.0,
        llm_max_retries=0,
    )


@dataclass(frozen=True)
class Endpoint:
    """The model server both systems use."""

    base_url: str  # .../v1
    model: str
    context_window: int  # tokens per request: the server's n_ctx over its slots
    max_tokens: int


def server_context_window(base_url: str, fallback: int) -> int:
    """n_ctx of one slot, from the llama.cpp server's /props (4096 over 2 slots = 2048)."""
    root = base_url.rstrip("/").removesuffix("/v1")
    try:
        with urllib.request.urlopen(f"{root}/props", timeout=5) as reply:
            return int(json.load(reply)["default_generation_settings"]["n_ctx"])
    except (OSError, ValueError, KeyError, TypeError):
        return fallback


def llama_document(doc: Any) -> Any:
    """rag's cleaned document as a llama-index Document (default metadata handling)."""
    from llama_index.core import Document

    metadata = {"title": doc.title, "source": doc.source, "published": doc.published}
    return Document(text=doc.text, metadata={k: v for k, v in metadata.items() if v})


def llamaindex_pipeline(
    docs: Sequence[Any], embedder: Any, endpoint: Endpoint
) -> tuple[Any, dict[str, Any]]:
    """llama-index's default pipeline over the same documents, embedder and model server;
    returns the streaming query engine and its (timed) ingest. The LLM is told the server's
    real context window: with OpenAILike's default (3900) llama-index packs prompts that the
    server rejects (HTTP 400, more than a slot's 2048 tokens)."""
    from llama_index.core import VectorStoreIndex
    from llama_index.llms.openai_like import OpenAILike

    documents = [llama_document(d) for d in docs]
    started = time.perf_counter()
    index = VectorStoreIndex.from_documents(documents, embed_model=embedder)
    seconds = ms_since(started) / 1000
    chunks = len(index.docstore.docs)
    llm = OpenAILike(
        api_base=endpoint.base_url,
        model=endpoint.model,
        is_chat_model=True,
        api_key="none",
        max_tokens=endpoint.max_tokens,
        context_window=endpoint.context_window,
        temperature=0.0,  # rag decodes greedily too
        timeout=600.0,
        max_retries=0,
    )
    ingest = {
        "documents": len(documents),
        "chunks": chunks,
        "seconds": seconds,
        "chunks_per_s": chunks / seconds if seconds else None,
    }
    return index.as_query_engine(llm=llm, streaming=True), ingest


def timed_ingest(kb: Any, run: Callable[[], Any]) -> dict[str, Any]:
    started = time.perf_counter()
    report = run()
    seconds = ms_since(started) / 1000
    return {
        "documents": kb.stats()["documents"],
        "chunks": report.chunks,
        "seconds": seconds,
        "chunks_per_s": report.chunks / seconds if seconds else None,
        "errors": [e.message for e in report.errors],
    }


def retrieval_latency(engine: Any, questions: Sequence[str]) -> dict[str, Any]:
    times = []
    for question in questions:
        started = time.perf_counter()
        engine.retriever.retrieve(question)
        times.append(ms_since(started))
    return {**p50_p95(times), "chunks": engine.kb.stats()["chunks"]}


# ------------------------------------------------------------------------------ 1. cold start


def rag_env(gguf: Path, data_dir: Path) -> dict[str, str]:
    """A `rag` subprocess on this data dir and the verified GGUF, with its own model server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "OPENAI_"))}
    env.update(
        RAG_DATA_DIR=str(data_dir),
        RAG_LOCAL_LLM_GGUF=str(gguf),
        RAG_LOCAL_LLM_PORT=str(free_port()),  # never reuse a running shared model server
        PYTHONUNBUFFERED="1",
    )
    return env


def timed_setup(gguf: Path, data_dir: Path) -> dict:
    """`rag setup` (the model step of `make run`): the model is assembled already, so this is
    the one-off computing and saving of the prompt-prefix caches."""
    command = [str(Path(sys.executable).parent / "rag"), "setup"]
    started = time.perf_counter()
    subprocess.run(command, cwd=REPO, env=rag_env(gguf, data_dir), check=True, capture_output=True)
    return {"command": "rag setup", "ms": ms_since(started)}


def cold_start(gguf: Path, data_dir: Path, question: str, timeout_s: float = 900) -> dict:
    """`rag serve --ingest-if-empty` on a fresh data dir (what `make run` does), timed to its
    "ready at" line and to a first answer through the page's `ask` API."""
    from gradio_client import Client

    env = rag_env(gguf, data_dir)
    command = [
        str(Path(sys.executable).parent / "rag"),
        *("serve", "--ingest-if-empty", "--port", str(free_port())),
    ]
    lines: list[tuple[float, str]] = []
    ready = threading.Event()
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append((ms_since(started), line.rstrip()))
            if "ready at" in line:
                ready.set()
        ready.set()  # the process ended

    threading.Thread(target=pump, daemon=True).start()
    try:
        ready.wait(timeout_s)
        found = [(t, m.group(1)) for t, line in lines if (m := re.search(r"ready at (\S+)", line))]
        if not found:
            tail = "\n".join(line for _, line in lines[-30:])
            raise RuntimeError(f"`rag serve` did not become ready:\n{tail}")
        ready_ms, url = found[0]
        client = Client(url, verbose=False, analytics_enabled=False)
        reply = client.predict(question, [], api_name="/ask")
        first_answer_ms = ms_since(started)
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    ingested = [t for t, line in lines if line.startswith("ingested ")]
    return {
        "command": shlex.join(["rag", *command[1:]]),
        "to_ready_ms": ready_ms,
        "to_first_answer_ms": first_answer_ms,
        "seed_ingested_at_ms": ingested[0] if ingested else None,
        "answer": reply.get("answer"),
        "refused": reply.get("refused"),
        "error": reply.get("error"),
        "server_timings_ms": reply.get("timings"),
    }


def cold_start_rows(
    cold: dict, restart: dict | None, setup: dict | None = None, uncached: dict | None = None
) -> list[list[str]]:
    """`rag setup` and the first start on its fresh data dir, the restart, and a start on a
    fresh dir without `rag setup` (no saved prompt prefixes), each when measured."""
    rows = []
    if setup:
        rows.append(
            ["`rag setup` (model assembled; prompt prefixes computed, saved)", fmt_ms(setup["ms"])]
        )
    after = " after `rag setup`" if setup else ""
    rows += [
        [f"seed ingested (fresh dir{after})", fmt_ms(cold["seed_ingested_at_ms"])],
        [f"cold start to ready (fresh dir{after})", fmt_ms(cold["to_ready_ms"])],
        [f"cold start to first answer (fresh dir{after})", fmt_ms(cold["to_first_answer_ms"])],
        *restart_rows(restart),
    ]
    if uncached:
        rows += [
            ["start on a fresh dir without `rag setup`: to ready", fmt_ms(uncached["to_ready_ms"])],
            ["… to first answer", fmt_ms(uncached["to_first_answer_ms"])],
        ]
    return rows


def restart_rows(restart: dict | None) -> list[list[str]]:
    """`rag serve` again on the data dir the first start filled: models load, nothing to ingest."""
    if not restart:
        return []
    return [
        ["restart (documents already ingested) to ready", fmt_ms(restart["to_ready_ms"])],
        ["restart to first answer", fmt_ms(restart["to_first_answer_ms"])],
    ]


def cold_start_report(results: dict, out: Path) -> Path:
    """`--cold-start-only`: both starts, as Markdown and JSON."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "latency-cold-start.json").write_text(json.dumps(results, indent=2) + "\n")
    cold, machine = results["cold_start"], results["machine"]
    lines = [
        "# Cold start of `rag serve`",
        "",
        f"Command: `{results['command']}`",
        "",
        f"{machine.get('date')} · commit `{machine.get('git_commit')}` · {machine.get('nproc')} "
        f"CPUs · load average at start {machine.get('load_average_at_start')}",
        "",
        "`rag setup` then "
        f"`{cold['command']}` on a fresh `RAG_DATA_DIR` (ingests seeds/), as `make run` does, "
        "then again on the same dir, and once on another fresh dir without `rag setup`; all "
        "with the verified GGUF, each timed to its `ready at` line (models loaded, prompt "
        "prefixes in the model's cache: restored from the files `rag setup` saved, else "
        "computed) and to a first answer through the page's `ask` API.",
        "",
        table(
            ["measure", "time"],
            cold_start_rows(
                cold, results["cold_restart"], results.get("setup"), results.get("cold_uncached")
            ),
        ),
        "",
        f"First answer: {json.dumps(cold['answer'])}",
        "",
    ]
    path = out / "latency-cold-start.md"
    path.write_text("\n".join(lines))
    return path


# ------------------------------------------------------------------------------ 1-2. seed corpus


def seed_benchmark(engine: Any, plan: Plan, calls: Any, endpoint: Endpoint) -> dict:
    from rag.ingest import load_file

    results: dict[str, Any] = {}
    log("seed: ingest")
    results["ingest"] = timed_ingest(engine.kb, lambda: engine.kb.ingest([Path("seeds")]))

    log("seed: warm-up (model load, prompt prefixes cached)")
    started = time.perf_counter()
    engine.warm_up()
    results["warm_up_ms"] = ms_since(started)

    log(f"seed: rag, seed question x{plan.reps}")
    runs = [time_rag(engine, calls, SEED_QUESTION) for _ in range(plan.reps)]
    results["rag_seed_question"] = summarize_runs(runs)

    history = [Turn(SEED_QUESTION, runs[-1].answer)]
    log(f"seed: rag, follow-up x{plan.reps}")
    follow = [time_rag(engine, calls, FOLLOW_UP, history) for _ in range(plan.reps)]
    results["rag_follow_up"] = summarize_runs(follow)
    results["rag_follow_up"]["condense_ms_median"] = median(
        r.detail["engine_timings_ms"].get("condense_ms") for r in follow
    )

    log("seed: retrieval over the golden questions")
    questions = [q["question"] for q in read_jsonl(SEED_QUESTIONS)]
    engine.retriever.retrieve(questions[0])
    results["retrieval"] = retrieval_latency(engine, questions)

    log(f"seed: llama-index default pipeline, seed question x{plan.reps}")
    docs = [load_file(p) for p in sorted(SEED_DIR.glob("*.txt"))]
    query_engine, ingest = llamaindex_pipeline(docs, engine.kb.embedder, endpoint)
    results["llamaindex_ingest"] = ingest
    li_runs = [time_llamaindex(query_engine, calls, SEED_QUESTION) for _ in range(plan.reps)]
    results["llamaindex_seed_question"] = summarize_runs(li_runs)
    return results


# ------------------------------------------------------------------------------ 3. MultiHop-RAG


def multihop_ingest_and_retrieval(
    seed_engine: Any, plan: Plan, results: dict[str, Any]
) -> tuple[Any, list[Any], list[Any]]:
    """The MultiHop articles ingested into a collection of their own (timed), the first
    retrieval (builds the keyword indexes) and the retrieval latency. Returns the engine, the
    documents and the question sample."""
    from rag.answer import Engine
    from rag.evaluate import Question, corpus_document, stratified_sample
    from rag.store import KnowledgeBase

    records = read_jsonl(MULTIHOP / "corpus.jsonl")
    raw_questions = read_jsonl(MULTIHOP / "questions_dev.jsonl")
    questions = [Question.from_record(r, i) for i, r in enumerate(raw_questions)]
    sample = stratified_sample(questions, plan.mh_questions, SAMPLE_SEED)
    needed = [d for q in sample for d in q.gold_doc_ids]
    articles = pick_articles(records, needed, plan.mh_articles, SAMPLE_SEED)
    docs = [corpus_document(r) for r in articles]
    results.update(articles=len(docs), sample_seed=SAMPLE_SEED)

    settings = seed_engine.settings.model_copy(update={"collection": "multihop"})
    kb = KnowledgeBase(settings, seed_engine.kb.embedder, client=seed_engine.kb.client)
    engine = Engine(settings, kb, llm=seed_engine._llm)
    log(f"multihop: rag ingest of {len(docs)} articles")
    results["ingest"] = timed_ingest(kb, lambda: kb.add_documents(docs))

    log("multihop: first retrieval (builds the keyword index)")
    started = time.perf_counter()
    engine.retriever.retrieve(questions[0].text)
    results["first_retrieval_ms"] = ms_since(started)
    timed = questions[: plan.mh_retrieval_questions]
    log(f"multihop: retrieval over {len(timed)} questions")
    results["retrieval"] = retrieval_latency(engine, [q.text for q in timed])
    return engine, docs, sample


def ingest_retrieval_report(results: dict, out: Path) -> Path:
    """`--ingest-retrieval-only`: MultiHop ingest and retrieval latency, as Markdown and JSON."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "latency-ingest-retrieval.json").write_text(json.dumps(results, indent=2) + "\n")
    mh, machine = results["multihop"], results["machine"]
    ingest, retrieval = mh["ingest"], mh["retrieval"]
    lines = [
        "# Ingest and retrieval latency (MultiHop-RAG articles)",
        "",
        f"Command: `{results['command']}`",
        "",
        f"{machine.get('date')} · commit `{machine.get('git_commit')}` · {machine.get('nproc')} "
        f"CPUs · load average at start {machine.get('load_average_at_start')}, at end "
        f"{machine.get('load_average_at_end')}",
        "",
        f"The full run's {mh['articles']} articles (the gold documents of its question sample, "
        "then a fixed random fill) into a fresh data dir, then `engine.retriever.retrieve` over "
        "the first dev questions; no LLM.",
        "",
        table(
            ["measure", "value"],
            [
                ["documents / chunks", f"{ingest['documents']} / {fmt_num(ingest['chunks'])}"],
                ["ingest wall time", f"{ingest['seconds']:.1f} s"],
                ["ingest chunks/s", f"{ingest['chunks_per_s']:.1f}"],
                ["first retrieval (builds the keyword indexes)", fmt_ms(mh["first_retrieval_ms"])],
                [
                    f"retrieval p50 / p95 over {retrieval['n']} questions",
                    f"{fmt_ms(retrieval['p50_ms'])} / {fmt_ms(retrieval['p95_ms'])}",
                ],
            ],
        ),
        "",
    ]
    path = out / "latency-ingest-retrieval.md"
    path.write_text("\n".join(lines))
    return path


def multihop_benchmark(
    seed_engine: Any,
    plan: Plan,
    calls: Any,
    endpoint: Endpoint,
    results: dict[str, Any],
    checkpoint: Callable[[], None],
) -> None:
    """Fills `results` step by step, calling `checkpoint` after each (the run takes long)."""
    from rag.evaluate import held_out_ranking

    engine, docs, sample = multihop_ingest_and_retrieval(seed_engine, plan, results)
    # The shipped ranking model was fitted on these dev questions: rank each with a fold model
    # that never saw it, as `rag eval` does, so the accuracy beside llama-index is held out.
    questions_bytes = (MULTIHOP / "questions_dev.jsonl").read_bytes()
    held_out, results["ranking_note"] = held_out_ranking(questions_bytes, engine.settings)
    if held_out is not None:
        engine.retriever.use_ranker(held_out)
    results["questions"] = []
    kb = engine.kb
    checkpoint()

    log("multihop: llama-index default ingest")
    query_engine, ingest = llamaindex_pipeline(docs, kb.embedder, endpoint)
    results["llamaindex_ingest"] = ingest

    rows = results["questions"]
    for i, q in enumerate(sample):
        log(f"multihop: question {i + 1}/{len(sample)} ({q.question_type})")
        row: dict[str, Any] = {
            "id": q.id,
            "question": q.text,
            "question_type": q.question_type,
            "answerable": q.answerable,
            "answers": q.answers,
            "order": list(interleaved_order(i)),
        }
        if held_out is not None:
            held_out.hold_out(q.id)
        for system in interleaved_order(i):
            if system == "rag":
                run = time_rag(engine, calls, q.text)
            else:
                run = time_llamaindex(query_engine, calls, q.text)
            correct = not run.error and is_correct(run.answer, run.refused, q.answers, q.answerable)
            row[system] = {**asdict(run), "correct": correct}
        rows.append(row)
        checkpoint()
    for system in ("rag", "llamaindex"):
        results[system] = answer_summary([r[system] for r in rows])
    results["ttft_speedup"] = ratio(
        results["llamaindex"]["ttft_ms_median"], results["rag"]["ttft_ms_median"]
    )


def answer_summary(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if not r["error"]]
    return {
        "n": len(runs),
        "errors": len(runs) - len(ok),
        "ttft_ms_median": median(r["ttft_ms"] for r in ok),
        "total_ms_median": median(r["total_ms"] for r in ok),
        "prompt_tokens_median": median(r["prompt_tokens"] for r in ok),
        "llm_calls_median": median(r.get("detail", {}).get("llm_calls") for r in ok),
        "accuracy": sum(r["correct"] for r in runs) / len(runs) if runs else None,
    }


# ------------------------------------------------------------------------------ report


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"


def fmt_num(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def fmt_ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def comparison_rows(ours: dict, li: dict, accuracy: bool = False) -> list[list[str]]:
    rows = [
        [
            "median time to first token",
            fmt_ms(ours["ttft_ms_median"]),
            fmt_ms(li["ttft_ms_median"]),
            fmt_ratio(ratio(ours["ttft_ms_median"], li["ttft_ms_median"])),
        ],
        [
            "median total",
            fmt_ms(ours["total_ms_median"]),
            fmt_ms(li["total_ms_median"]),
            fmt_ratio(ratio(ours["total_ms_median"], li["total_ms_median"])),
        ],
        [
            "median prompt tokens (tiktoken cl100k)",
            fmt_num(ours["prompt_tokens_median"]),
            fmt_num(li["prompt_tokens_median"]),
            fmt_ratio(ratio(ours["prompt_tokens_median"], li["prompt_tokens_median"])),
        ],
    ]
    for key, label in (
        ("ttft_ms_first", "first ask: time to first token"),
        ("total_ms_first", "first ask: total"),
    ):
        if ours.get(key) is not None and li.get(key) is not None:  # repeats of one question
            rows.append(
                [label, fmt_ms(ours[key]), fmt_ms(li[key]), fmt_ratio(ratio(ours[key], li[key]))]
            )
    rows.append(
        [
            "median LLM calls per answer",
            fmt_num(ours["llm_calls_median"]),
            fmt_num(li["llm_calls_median"]),
            "–",
        ]
    )
    if accuracy:
        rows.append(
            ["answer accuracy", fmt_num(ours["accuracy"], 3), fmt_num(li["accuracy"], 3), "–"]
        )
    rows.append(["errors", str(ours["errors"]), str(li["errors"]), "–"])
    return rows


def ingest_row(name: str, ingest: dict) -> list[str]:
    return [
        name,
        fmt_num(ingest["documents"]),
        fmt_num(ingest["chunks"]),
        f"{ingest['seconds']:.1f} s",
        fmt_num(ingest["chunks_per_s"], 1),
    ]


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seed, mh = results["seed"], results["multihop"]
    systems = {
        "rag": (seed["rag_seed_question"], mh["rag"], "#2b6cb0"),
        "llama-index default": (seed["llamaindex_seed_question"], mh["llamaindex"], "#c05621"),
    }
    groups = [("seed", 0, "ttft"), ("seed", 0, "total"), ("MultiHop", 1, "ttft")]
    groups.append(("MultiHop", 1, "total"))
    fig, (bars, spread) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.38
    for offset, (label, (*summaries, color)) in enumerate(systems.items()):
        values = [(summaries[i][f"{kind}_ms_median"] or 0) / 1000 for _, i, kind in groups]
        xs = [i + (offset - 0.5) * width for i in range(len(groups))]
        drawn = bars.bar(xs, values, width, label=label, color=color)
        bars.bar_label(drawn, fmt="%.1f", fontsize=8)
    names = [f"{corpus}: {'TTFT' if kind == 'ttft' else 'total'}" for corpus, _, kind in groups]
    bars.set_xticks(range(len(groups)), names, fontsize=9)
    bars.set_ylabel("median seconds")
    bars.set_title("Median latency, same model server and embedder")
    bars.legend()

    per_system = [
        [r[s]["ttft_ms"] / 1000 for r in mh["questions"] if r[s]["ttft_ms"] is not None]
        for s in ("rag", "llamaindex")
    ]
    spread.boxplot(per_system, showfliers=False)
    spread.set_xticks([1, 2], ["rag", "llama-index default"])
    for i, values in enumerate(per_system, 1):
        jitter = random.Random(i)
        spread.scatter([i + jitter.uniform(-0.12, 0.12) for _ in values], values, s=12, alpha=0.6)
    spread.set_ylabel("seconds")
    spread.set_title(f"MultiHop time to first token, {len(mh['questions'])} questions")
    fig.suptitle(
        f"rag latency ({results['plan']['mode']} mode, {results['machine']['nproc']} CPUs)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def render_markdown(results: dict, plot_name: str) -> str:
    machine, plan = results["machine"], results["plan"]
    cold, seed, mh = results["cold_start"], results["seed"], results["multihop"]
    endpoint = results["endpoint"]
    rag_seed, li_seed = seed["rag_seed_question"], seed["llamaindex_seed_question"]
    follow, seed_retrieval = seed["rag_follow_up"], seed["retrieval"]
    speedup = mh["ttft_speedup"]
    goal = "met" if speedup is not None and speedup >= TTFT_GOAL else "not met"
    out = [
        '# Latency: "Fast answers on a 2-core CPU"',
        "",
        f"Command: `{results['command']}`",
        "",
        table(
            ["machine", ""],
            [
                ["nproc", machine["nproc"]],
                ["CPU model", machine["cpu_model"]],
                ["RAM", f"{machine['ram_gb']} GB"],
                ["date (UTC)", machine["date"]],
                ["git commit", f"`{machine['git_commit']}`"],
                ["Python / platform", f"{machine['python']} / {machine['platform']}"],
                [
                    "load average at start / end",
                    f"{machine['load_average_at_start']} / {machine['load_average_at_end']}",
                ],
                ["mode", plan["mode"]],
                ["benchmark wall time", f"{results['wall_s'] / 60:.1f} min"],
            ],
        ),
        "",
    ]
    if plan["mode"] == "quick":
        out += ["> **Quick mode: a smoke test, not benchmark results.**", ""]
    out += [
        "Models: Qwen2.5-Coder-1.5B-Instruct Q4_K_M GGUF behind rag's local xllamacpp server "
        "(2 slots, prompt cache), all-MiniLM-L6-v2 int8 ONNX embedder. llama-index runs on the "
        "same server and embedder, in the same process.",
        "",
        "## Summary",
        "",
        table(
            ["measure", "value"],
            [
                [
                    "cold start to ready (`rag serve --ingest-if-empty`"
                    + (" after `rag setup`)" if results.get("setup") else ")"),
                    fmt_ms(cold["to_ready_ms"]),
                ],
                ["cold start to first answer (`ask` API)", fmt_ms(cold["to_first_answer_ms"])],
                # The first ask is the honest figure: repeats of one question find the whole
                # prompt in the server's cache (their median is in section 1).
                [
                    "seed question, first ask: time to first token",
                    fmt_ms(rag_seed["ttft_ms_first"]),
                ],
                ["seed question, first ask: total", fmt_ms(rag_seed["total_ms_first"])],
                [
                    "follow-up (condense included), first ask: total",
                    fmt_ms(follow["total_ms_first"]),
                ],
                *restart_rows(results.get("cold_restart")),
                [
                    f"MultiHop median TTFT, llama-index / rag (goal ≥ {TTFT_GOAL:.0f}×)",
                    f"{fmt_ratio(speedup)} ({goal})",
                ],
                [
                    "MultiHop answer accuracy, rag / llama-index",
                    f"{fmt_num(mh['rag']['accuracy'], 3)} / "
                    f"{fmt_num(mh['llamaindex']['accuracy'], 3)}",
                ],
                [
                    f"retrieval p50 / p95 at {fmt_num(mh['retrieval']['chunks'])} chunks",
                    f"{fmt_ms(mh['retrieval']['p50_ms'])} / {fmt_ms(mh['retrieval']['p95_ms'])}",
                ],
                ["peak RSS, benchmark process", f"{results['memory']['self_peak_rss_mb']:,.0f} MB"],
            ],
        ),
        "",
        f"![latency]({plot_name})",
        "",
        "## 1. Seed corpus (seeds/)",
        "",
        "### Cold start",
        "",
        f"`{cold['command']}` with a fresh `RAG_DATA_DIR` and `RAG_LOCAL_LLM_GGUF` set to the "
        "verified GGUF (no re-assembly); it ingests seeds/, loads both models, warms the prompt "
        "cache, then prints `ready at`. The first answer is the seed question through "
        '`gradio_client` (`api_name="/ask"`). The OS file cache may already hold the GGUF.',
        "",
        table(
            ["measure", "time"],
            cold_start_rows(
                cold,
                results.get("cold_restart"),
                results.get("setup"),
                results.get("cold_uncached"),
            ),
        ),
        "",
        f"First answer: {json.dumps(cold['answer'])} (refused: {cold['refused']}, error: "
        f"{cold['error']})",
        "",
        "### Warm, in-process",
        "",
        f"`Engine.from_settings` + `warm_up()` ({fmt_ms(seed['warm_up_ms'])}). Time to first "
        "token is measured to the first streamed text the user sees; total to the final answer "
        "(citation check included). Repeats of one question hit the server's prompt cache, so the "
        "first repetition is shown too.",
        "",
        table(
            ["measure", "median", "first run", "n"],
            [
                [
                    f'"{SEED_QUESTION}" time to first token',
                    fmt_ms(rag_seed["ttft_ms_median"]),
                    fmt_ms(rag_seed["ttft_ms_first"]),
                    rag_seed["n"],
                ],
                [
                    f'"{SEED_QUESTION}" total',
                    fmt_ms(rag_seed["total_ms_median"]),
                    fmt_ms(rag_seed["total_ms_first"]),
                    rag_seed["n"],
                ],
                [
                    "prompt tokens (result.tokens)",
                    fmt_num(rag_seed["prompt_tokens_median"]),
                    "",
                    rag_seed["n"],
                ],
                [
                    f'follow-up "{FOLLOW_UP}" total',
                    fmt_ms(follow["total_ms_median"]),
                    fmt_ms(follow["total_ms_first"]),
                    follow["n"],
                ],
                [
                    "follow-up: condense part",
                    fmt_ms(follow["condense_ms_median"]),
                    "",
                    follow["n"],
                ],
                [
                    f"retrieval p50 / p95 (golden questions, {seed['retrieval']['chunks']} chunks)",
                    f"{fmt_ms(seed_retrieval['p50_ms'])} / {fmt_ms(seed_retrieval['p95_ms'])}",
                    "",
                    seed["retrieval"]["n"],
                ],
            ],
        ),
        "",
        f"Answer: {json.dumps(rag_seed['runs'][-1]['answer'])}  ",
        f"Follow-up searched for: {json.dumps(follow['runs'][-1]['detail'].get('question_used'))}"
        f"; answer: {json.dumps(follow['runs'][-1]['answer'])}",
        "",
        table(
            ["ingest", "documents", "chunks", "wall", "chunks/s"],
            [
                ingest_row("rag (seed)", seed["ingest"]),
                ingest_row("llama-index default (seed)", seed["llamaindex_ingest"]),
            ],
        ),
        "",
        "## 2. llama-index default pipeline, seed question",
        "",
        "`VectorStoreIndex.from_documents(docs, embed_model=<rag's MiniLMEmbedding>)` (default "
        "chunking: SentenceSplitter 1024/200, in-memory vector store), "
        "`.as_query_engine(llm=OpenAILike(<same server>, is_chat_model=True, api_key='none', "
        f"max_tokens={endpoint['max_tokens']}, context_window={endpoint['context_window']}, "
        "temperature=0), streaming=True)` (defaults: top-2 chunks, compact-and-refine). Its "
        "prompts are captured through llama-index's instrumentation and counted like rag's.",
        "",
        table(
            ["seed question", "rag", "llama-index", "rag / llama-index"],
            comparison_rows(rag_seed, li_seed),
        ),
        "",
        f"llama-index answer: {json.dumps(li_seed['runs'][-1]['answer'])}",
        "",
        "## 3. MultiHop-RAG dev",
        "",
        f"{mh['articles']} articles. The {mh['rag']['n']} questions are a fixed stratified sample "
        f"(seed {mh['sample_seed']}, by question_type; null_query ones are unanswerable and a "
        "refusal counts as correct), answered by both systems one question at a time, "
        "alternating which goes first.",
        "",
        *([mh["ranking_note"], ""] if mh.get("ranking_note") else []),
        table(
            ["ingest", "documents", "chunks", "wall", "chunks/s"],
            [
                ingest_row("rag", mh["ingest"]),
                ingest_row("llama-index default", mh["llamaindex_ingest"]),
            ],
        ),
        "",
        f"rag retrieval (`engine.retriever.retrieve`) over {mh['retrieval']['n']} questions at "
        f"{fmt_num(mh['retrieval']['chunks'])} chunks: p50 {fmt_ms(mh['retrieval']['p50_ms'])}, "
        f"p95 {fmt_ms(mh['retrieval']['p95_ms'])} (the first retrieval, which builds the keyword "
        f"index, took {fmt_ms(mh['first_retrieval_ms'])} and is not included).",
        "",
        table(
            ["MultiHop", "rag", "llama-index", "rag / llama-index"],
            comparison_rows(mh["rag"], mh["llamaindex"], accuracy=True),
        ),
        "",
        f"Median TTFT speed-up (llama-index / rag): **{fmt_ratio(speedup)}** — goal ≥ "
        f"{TTFT_GOAL:.0f}×: **{goal}**.",
        "",
        "<details><summary>Per question</summary>",
        "",
        table(
            ["id", "type", "rag TTFT", "rag total", "rag ✓", "li TTFT", "li total", "li ✓"],
            [
                [
                    r["id"],
                    r["question_type"],
                    fmt_ms(r["rag"]["ttft_ms"]),
                    fmt_ms(r["rag"]["total_ms"]),
                    "✓" if r["rag"]["correct"] else "✗",
                    fmt_ms(r["llamaindex"]["ttft_ms"]),
                    fmt_ms(r["llamaindex"]["total_ms"]),
                    "✓" if r["llamaindex"]["correct"] else "✗",
                ]
                for r in mh["questions"]
            ],
        ),
        "",
        "</details>",
        "",
        "## 4. Peak memory",
        "",
        table(
            ["process", "peak RSS"],
            [
                [
                    "benchmark (rag + llama-index + in-process model server)",
                    f"{results['memory']['self_peak_rss_mb']:,.0f} MB",
                ],
                [
                    "children (the cold-start `rag serve`)",
                    f"{results['memory']['children_peak_rss_mb']:,.0f} MB",
                ],
            ],
        ),
        "",
        "## Method notes",
        "",
        "- Time to first token: from the call to the first streamed text the user sees (rag: "
        "the first `Token` event; llama-index: the first non-empty piece of `response_gen`); "
        "an answer that streams nothing (rag's refusal without a model call) counts when it "
        "arrives. Total: to the end of the answer (rag: its `Final` event, citation check "
        "included). Both include retrieval and embedding the question.",
        "- One model server for both systems: rag's local xllamacpp server (n_ctx "
        f"{endpoint['context_window'] * 2} over 2 slots, prompt cache on). llama-index is told "
        f"the real per-request window ({endpoint['context_window']} tokens): with OpenAILike's "
        "default 3900 it packs prompts the server rejects (HTTP 400), so it now splits the two "
        "1024-token chunks over more than one call when they do not fit (compact-and-refine, "
        "its default response mode); the LLM-calls row shows how often.",
        "- Greedy decoding (temperature 0) and no client retries for both; a failed request is "
        "counted under errors and left out of the medians.",
        "- Prompt tokens: tiktoken cl100k over the messages sent (rag: `result.tokens`; "
        "llama-index: summed over its calls), not the model's own tokenizer.",
        "- Repeating one question reuses the server's prompt cache; MultiHop questions are each "
        "asked once, so there only the fixed prompt prefix is cached (rag's system prompt and "
        "worked examples, llama-index's system prompt).",
        "- Accuracy: `rag.metrics.answer_accuracy` against `answers` (citation marks removed); "
        "a refusal (`result.refused` or `is_refusal_text`) is correct for null_query and wrong "
        "otherwise.",
        "",
        "Details of every run are in latency.json.",
        "",
    ]
    return "\n".join(out)


def write_report(results: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "latency.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    plot(results, out / "latency.png")
    (out / "latency.md").write_text(render_markdown(results, "latency.png"))


# ------------------------------------------------------------------------------ main


def command_line(argv: Sequence[str]) -> str:
    return shlex.join([".venv/bin/python", "benchmarks/latency.py", *argv])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: few repetitions")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument(
        "--cold-start-only", action="store_true", help="only the `rag setup` and `rag serve` starts"
    )
    parser.add_argument(
        "--ingest-retrieval-only",
        action="store_true",
        help="only the MultiHop ingest and retrieval latency (no LLM)",
    )
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    # SIGTERM ends the run through SystemExit, so the temporary data dir is still removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    os.chdir(REPO)  # document ids are paths relative to the repository, as `rag ingest seeds`

    from rag.answer import Engine
    from rag.config import Settings
    from rag.llm import local_gguf

    started = time.perf_counter()
    results: dict[str, Any] = {"command": command_line(argv), "plan": asdict(plan)}
    results["machine"] = machine_info()
    gguf = local_gguf(Settings())  # assembled and verified once, reused by every run below
    results["gguf"] = str(gguf)
    work = Path(tempfile.mkdtemp(prefix="rag-latency-"))
    partial = args.out / "latency.partial.json"

    def checkpoint() -> None:
        """What is measured so far, in case the run is stopped (the full run takes hours)."""
        args.out.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps(results, indent=2, default=str) + "\n")

    try:
        if args.ingest_retrieval_only:
            engine = Engine.from_settings(bench_settings(work / "warm", gguf))
            results["multihop"] = {}
            multihop_ingest_and_retrieval(engine, plan, results["multihop"])
            results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
            log(f"wrote {ingest_retrieval_report(results, args.out)}")
            return 0
        log("cold start: rag setup")
        results["setup"] = timed_setup(gguf, work / "cold")
        log("cold start: rag serve")
        results["cold_start"] = cold_start(gguf, work / "cold", SEED_QUESTION)
        log("cold start: rag serve again, documents already ingested")
        results["cold_restart"] = cold_start(gguf, work / "cold", SEED_QUESTION)
        log("cold start: rag serve on a fresh dir without rag setup")
        results["cold_uncached"] = cold_start(gguf, work / "uncached", SEED_QUESTION)
        checkpoint()
        if args.cold_start_only:
            results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
            log(f"wrote {cold_start_report(results, args.out)}")
            partial.unlink(missing_ok=True)
            return 0

        settings = bench_settings(work / "warm", gguf)
        engine = Engine.from_settings(settings)
        base_url = engine.llm.base_url  # starts this process's own model server
        fallback = settings.local_llm_ctx // 2  # rag/llm.py runs 2 slots
        endpoint = Endpoint(
            base_url,
            gguf.stem,
            server_context_window(base_url, fallback),
            settings.llm_max_tokens,
        )
        results["endpoint"] = asdict(endpoint)
        calls = make_call_log()
        results["seed"] = seed_benchmark(engine, plan, calls, endpoint)
        checkpoint()
        results["multihop"] = {}
        multihop_benchmark(engine, plan, calls, endpoint, results["multihop"], checkpoint)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["memory"] = peak_memory()
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["wall_s"] = ms_since(started) / 1000
    write_report(results, args.out)
    partial.unlink(missing_ok=True)
    log(f"wrote {args.out / 'latency.md'} in {results['wall_s'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())

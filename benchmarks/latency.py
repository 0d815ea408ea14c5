"""Latency benchmark for the issue "Fast answers on a 2-core CPU".

    .venv/bin/python benchmarks/latency.py [--quick] [--out benchmarks/results]

Measures rag with its shipped models (Qwen2.5-Coder-1.5B GGUF behind rag's local xllamacpp
server, MiniLM ONNX embedder) and, on the same model server and embedder, llama-index's default
pipeline (`VectorStoreIndex.from_documents` + `as_query_engine(streaming=True)`):

1. seed corpus: cold start of `rag serve` (to "ready at" and to a first answer through the `ask`
   API); the one-shot CLI (`rag ask` as a fresh process: starting its own model server, and
   with a `rag llm-server` or a `rag serve` already running); then warm, in-process: the seed
   question and a follow-up, retrieval over the golden questions, ingest speed;
2. the seed question through llama-index's default pipeline;
3. MultiHop-RAG dev: ingest speed, retrieval over the questions, and a fixed stratified sample of
   questions through both systems, interleaved question by question (TTFT, total, accuracy);
4. peak memory.

Writes latency.md (with the exact command and the machine), latency.json and latency.png into
--out. `--quick` is a smoke test (few repetitions, 10 MultiHop questions, 60 articles); its
numbers are not benchmark results. `--one-shot-only` measures the one-shot CLI alone
(latency-one-shot.md). While running, what is measured so far is kept in
latency.partial.json (removed when the report is written).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# rag first: importing it sets the offline environment before other libraries load.
from rag.events import Final, Token, Turn  # noqa: E402
from rag.llm import LLM, Endpoint, Message, OpenAICompatibleLLM  # noqa: E402
from rag.text import count_tokens, is_refusal_text, strip_citations  # noqa: E402
from rag_eval import report  # noqa: E402
from rag_eval.data import SEED_DIR as EVAL_SEED_DIR  # noqa: E402
from rag_eval.data import read_jsonl  # noqa: E402
from rag_eval.metrics import contains_words, percentile_or_none  # noqa: E402
from rag_eval.net import free_port  # noqa: E402
from rag_eval.process import Watched  # noqa: E402
from rag_eval.provenance import git_commit  # noqa: E402
from rag_eval.runners import base_row  # noqa: E402

Block = report.Block

SEED_DIR = REPO / "seeds"
SEED_QUESTIONS = EVAL_SEED_DIR / "questions.jsonl"
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
    """The eval's percentile at 50, over the values that were measured."""
    return percentile_or_none([v for v in values if v is not None], 50)


def p50_p95(values: Sequence[float]) -> dict[str, float | int | None]:
    return {
        "p50_ms": percentile_or_none(values, 50),
        "p95_ms": percentile_or_none(values, 95),
        "n": len(values),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def is_correct(answer: str, refused: bool, golds: Sequence[str], answerable: bool) -> bool:
    """MultiHop accuracy as `rag eval` reports it in `answer_accuracy_words` (whole words; a
    Yes/No gold must be the answer's first word, so "not" or a quoted "No. 3" do not count as
    "No"), citation marks removed; for an unanswerable question (null_query) a refusal is the
    correct answer. llama-index's answers are judged by the same rule as rag's."""
    refused = refused or is_refusal_text(answer)
    if not answerable:
        return refused
    return not refused and contains_words(strip_citations(answer), golds) == 1.0


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


def load_averages() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine_info() -> dict[str, Any]:
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model(),
        "ram_gb": round(pages / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(REPO),
        "load_average_at_start": load_averages(),
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
    """Records the chat messages of every LLM call since the last `reset()`: llama-index's
    through its instrumentation, rag's through `RecordedLLM`. So both systems' calls are
    counted the same way."""
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


class RecordedLLM(LLM):
    """rag's model with each answer or condense call written to the call log. rag does not
    talk to its model through llama-index, so the instrumentation that sees the baseline's
    calls does not see these. Priming the prompt cache is not a call the answer makes."""

    def __init__(self, inner: LLM, calls: Any) -> None:
        self.inner = inner
        self.calls = calls
        self.description = inner.description

    def stream(self, messages: Sequence[Message], max_tokens: int) -> Iterator[str]:
        self.calls.messages.append(list(messages))
        return self.inner.stream(messages, max_tokens)

    def prime(self, messages: Sequence[Message]) -> None:
        self.inner.prime(messages)


def time_llamaindex(query_engine: Any, calls: Any, question: str) -> Run:
    """The streamed answer of llama-index's query engine; prompt tokens are summed over all its
    LLM calls (the model reads all of them before the last one streams)."""
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


def run_medians(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Counts and medians of answered questions (`Run` fields); failed ones count as errors
    and stay out of the medians."""
    ok = [r for r in runs if not r["error"]]
    return {
        "n": len(runs),
        "errors": len(runs) - len(ok),
        "ttft_ms_median": median(r["ttft_ms"] for r in ok),
        "total_ms_median": median(r["total_ms"] for r in ok),
        "prompt_tokens_median": median(r["prompt_tokens"] for r in ok),
        "llm_calls_median": median(r.get("detail", {}).get("llm_calls") for r in ok),
    }


def summarize_runs(runs: Sequence[Run]) -> dict[str, Any]:
    """Repeats of one question: the medians, and the first run apart (it alone misses the
    server's cache of the whole prompt)."""
    records = [asdict(r) for r in runs]
    ok = [r for r in runs if not r.error]
    return {
        **run_medians(records),
        "ttft_ms_first": ok[0].ttft_ms if ok else None,
        "total_ms_first": ok[0].total_ms if ok else None,
        "runs": records,
    }


def answer_summary(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Different questions, each asked once: the medians and the accuracy over all of them."""
    accuracy = sum(r["correct"] for r in runs) / len(runs) if runs else None
    return {**run_medians(runs), "accuracy": accuracy}


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
class ModelServer:
    """The model server both systems use, and what llama-index must be told about it."""

    endpoint: Endpoint
    context_window: int  # tokens per request: the server's n_ctx over its slots
    max_tokens: int
    slots: int

    def record(self) -> dict[str, Any]:
        """For the results; the API key is left out."""
        return {
            "base_url": self.endpoint.base_url,
            "model": self.endpoint.model,
            "context_window": self.context_window,
            "max_tokens": self.max_tokens,
            "slots": self.slots,
        }


def server_context_window(base_url: str, fallback: int) -> int:
    """n_ctx of one slot, from the llama.cpp server's /props (4096 over 2 slots = 2048)."""
    root = base_url.rstrip("/").removesuffix("/v1")
    try:
        with urllib.request.urlopen(f"{root}/props", timeout=5) as reply:
            return int(json.load(reply)["default_generation_settings"]["n_ctx"])
    except (OSError, ValueError, KeyError, TypeError):
        return fallback


def model_server(llm: LLM, settings: Any) -> ModelServer:
    """The endpoint of rag's own model server (connecting starts it)."""
    from rag.llm.local import SLOTS

    if not isinstance(llm, OpenAICompatibleLLM):
        raise RuntimeError(f"the benchmark needs an OpenAI-compatible model server, not {llm}")
    fallback = settings.local_llm_ctx // SLOTS
    window = server_context_window(llm.base_url, fallback)
    return ModelServer(llm.endpoint, window, settings.llm_max_tokens, SLOTS)


def llama_document(doc: Any) -> Any:
    """rag's cleaned document as a llama-index Document (default metadata handling)."""
    from llama_index.core import Document

    metadata = {"title": doc.title, "source": doc.source, "published": doc.published}
    return Document(text=doc.text, metadata={k: v for k, v in metadata.items() if v})


def llamaindex_pipeline(
    docs: Sequence[Any], embedder: Any, server: ModelServer
) -> tuple[Any, dict[str, Any]]:
    """llama-index's default pipeline over the same documents, embedder and model server;
    returns the streaming query engine and its (timed) ingest. The LLM is told the server's
    real context window: with OpenAILike's default (3900) llama-index packs prompts that the
    server rejects (HTTP 400, more than a slot's tokens)."""
    from llama_index.core import VectorStoreIndex

    from rag.llm.openai_compatible import llama_index_llm

    documents = [llama_document(d) for d in docs]
    started = time.perf_counter()
    index = VectorStoreIndex.from_documents(documents, embed_model=embedder)
    seconds = ms_since(started) / 1000
    chunks = len(index.docstore.docs)
    llm = llama_index_llm(server.endpoint, server.max_tokens, server.context_window)
    ingest = {
        "documents": len(documents),
        "chunks": chunks,
        "seconds": seconds,
        "chunks_per_s": chunks / seconds if seconds else None,
    }
    return index.as_query_engine(llm=llm, streaming=True), ingest


def timed_ingest(kb: Any, run: Callable[[], Any]) -> dict[str, Any]:
    started = time.perf_counter()
    ingested = run()
    seconds = ms_since(started) / 1000
    return {
        "documents": kb.stats()["documents"],
        "chunks": ingested.chunks,
        "seconds": seconds,
        "chunks_per_s": ingested.chunks / seconds if seconds else None,
        "errors": [e.message for e in ingested.errors],
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
    process = Watched(command, env, REPO)
    try:
        found = process.wait_for(r"ready at (\S+)", timeout_s)
        if found is None:
            raise RuntimeError(f"`rag serve` did not become ready:\n{process.output()}")
        ready_ms, url = process.lines[-1][0], found.group(1)
        client = Client(url, verbose=False, analytics_enabled=False)
        reply = client.predict(question, [], api_name="/ask")
        first_answer_ms = ms_since(process.started)
    finally:
        process.stop()
    lines = process.lines
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


def cold_start_table(results: dict) -> Block:
    rows = cold_start_rows(
        results["cold_start"],
        results.get("cold_restart"),
        results.get("setup"),
        results.get("cold_uncached"),
    )
    return ("table", ["measure", "time"], rows)


def cold_start_report(results: dict, out: Path) -> Path:
    """`--cold-start-only`: both starts, as Markdown and JSON."""
    cold = results["cold_start"]
    blocks = [
        *header_blocks("Cold start of `rag serve`", results),
        (
            "p",
            "`rag setup` then "
            f"`{cold['command']}` on a fresh `RAG_DATA_DIR` (ingests seeds/), as `make run` does, "
            "then again on the same dir, and once on another fresh dir without `rag setup`; all "
            "with the verified GGUF, each timed to its `ready at` line (models loaded, prompt "
            "prefixes in the model's cache: restored from the files `rag setup` saved, else "
            "computed) and to a first answer through the page's `ask` API.",
        ),
        cold_start_table(results),
        ("p", f"First answer: {json.dumps(cold['answer'])}"),
    ]
    return write_markdown(results, out, "latency-cold-start", blocks)


# ------------------------------------------------------------------------------ 1b. one-shot CLI

ONE_SHOT_TARGET_MS = 8000.0  # the target for a cold `rag ask`: median wall time
ONE_SHOT_TTFT_TARGET_MS = 3000.0


def rag_command(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "rag"), *args]


def timed_ask(env: dict[str, str], question: str, *options: str) -> dict:
    """One `rag ask [OPTIONS] QUESTION` process, timed from its start: to the first byte of
    the streamed answer on stdout (its first token) and to its exit."""
    started = time.perf_counter()
    process = subprocess.Popen(
        rag_command("ask", *options, question),
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    errors: list[bytes] = []
    drain = threading.Thread(target=lambda: errors.append(process.stderr.read()), daemon=True)
    drain.start()
    first = None
    out = b""
    assert process.stdout is not None
    while piece := os.read(process.stdout.fileno(), 4096):
        if first is None and piece.strip():
            first = ms_since(started)
        out += piece
    code = process.wait()
    wall = ms_since(started)
    drain.join()
    text = out.decode(errors="replace").strip()
    return {
        "wall_ms": wall,
        "first_token_ms": first,
        "answer": text.splitlines()[0] if text else "",
        "exit_code": code,
        "error": b"".join(errors).decode(errors="replace")[-500:] if code else None,
    }


# Asked (untimed) before each timed run against a running server: a server's slot keeps the
# whole prompt of the last answer, so the same question asked again would be read from its
# cache, a speed no user asking something new sees.
OTHER_QUESTION = "How many prisoners were exchanged?"


def one_shot_case(
    env: dict[str, str], reps: int, served: bool = False, options: Sequence[str] = ()
) -> dict:
    runs = []
    for _ in range(reps):
        if served:
            timed_ask(env, OTHER_QUESTION, *options)
        runs.append(timed_ask(env, SEED_QUESTION, *options))
    ok = [r for r in runs if r["exit_code"] == 0]
    return {
        "n": len(runs),
        "errors": len(runs) - len(ok),
        "wall_ms_median": median(r["wall_ms"] for r in ok),
        "first_token_ms_median": median(r["first_token_ms"] for r in ok),
        "runs": runs,
    }


def one_shot_benchmark(gguf: Path, data_dir: Path, reps: int) -> dict:
    """`rag ask "<seed question>"` as a user runs it once, a fresh process each time, after
    `rag setup` and `rag ingest seeds`: (a) cold, starting its own model server (nothing on the
    shared port), (b) with a `rag llm-server` running on the shared port, (c) with a `rag
    serve` running (which shares its model on that port): the question handed to it (same data
    dir and settings), and answered in the `rag ask` process with its model (`--no-server`)."""
    env = rag_env(gguf, data_dir)
    subprocess.run(rag_command("setup"), cwd=REPO, env=env, check=True, capture_output=True)
    subprocess.run(
        rag_command("ingest", "seeds"), cwd=REPO, env=env, check=True, capture_output=True
    )
    results: dict[str, Any] = {"reps": reps, "load_average_at_start": load_averages()}
    log(f"one-shot: rag ask, own model server x{reps}")
    results["own_server"] = one_shot_case(env, reps)
    env = {**env, "RAG_PORT": str(free_port())}  # where `rag serve` listens and `rag ask` looks
    for cases, args, ready in (
        ({"llm_server": ()}, ("llm-server",), r"serving \S+ at"),
        ({"serve": (), "serve_no_server": ("--no-server",)}, ("serve",), r"ready at"),
    ):
        server = Watched(rag_command(*args), env, REPO)
        try:
            if server.wait_for(ready, 600) is None:
                raise RuntimeError(f"`rag {args[0]}` did not start:\n{server.output()}")
            for name, options in cases.items():
                log(f"one-shot: rag ask {' '.join(options)}, with `rag {args[0]}` running x{reps}")
                results[name] = one_shot_case(env, reps, served=True, options=options)
        finally:
            server.stop()
    results["load_average_at_end"] = load_averages()
    return results


def one_shot_rows(one_shot: dict) -> list[list[str]]:
    def met(value: float | None, target: float) -> str:
        return "" if value is None else (" (met)" if value <= target else " (not met)")

    rows = []
    for key, label in (
        ("own_server", "cold, starts its own model server"),
        ("llm_server", "with `rag llm-server` running"),
        ("serve", "with `rag serve` running: answered by it"),
        ("serve_no_server", "with `rag serve` running, `--no-server`: answered here, its model"),
    ):
        case = one_shot.get(key)
        if not case:
            continue
        wall, first = case["wall_ms_median"], case["first_token_ms_median"]
        rows.append(
            [
                label,
                fmt_ms(wall) + met(wall, ONE_SHOT_TARGET_MS),
                fmt_ms(first) + met(first, ONE_SHOT_TTFT_TARGET_MS),
                f"{case['n']} ({case['errors']} failed)",
            ]
        )
    return rows


def one_shot_blocks(results: dict) -> list[Block]:
    one_shot = results["one_shot"]
    answers = sorted(
        {
            r["answer"]
            for case in ("own_server", "llm_server", "serve", "serve_no_server")
            for r in one_shot.get(case, {}).get("runs", [])
        }
    )
    return [
        ("h3", "One-shot CLI"),
        (
            "p",
            f'`rag ask "{SEED_QUESTION}"`, a fresh process each time (after `rag setup` and '
            "`rag ingest seeds` on its data dir), timed from the process start to the first "
            "byte of the streamed answer (its first token) and to its exit; with a server "
            f'running, each timed run follows an untimed `rag ask "{OTHER_QUESTION}"`, so the '
            "server has not just read the same prompt. Targets: median "
            f"wall time ≤ {fmt_ms(ONE_SHOT_TARGET_MS)}, time to first token ≤ "
            f"{fmt_ms(ONE_SHOT_TTFT_TARGET_MS)}. Load average during these runs: "
            f"{one_shot['load_average_at_start']} → {one_shot['load_average_at_end']}.",
        ),
        (
            "table",
            ["case", "median wall", "median to first token", "runs"],
            one_shot_rows(one_shot),
        ),
        ("p", f"Answers: {', '.join(json.dumps(a) for a in answers)}"),
    ]


def one_shot_report(results: dict, out: Path) -> Path:
    """`--one-shot-only`: the one-shot CLI cases, as Markdown and JSON."""
    blocks = [*header_blocks("One-shot `rag ask`", results), *one_shot_blocks(results)]
    return write_markdown(results, out, "latency-one-shot", blocks)


# ------------------------------------------------------------------------------ 1-2. seed corpus


def seed_benchmark(engine: Any, plan: Plan, calls: Any, server: ModelServer) -> dict:
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
    query_engine, ingest = llamaindex_pipeline(docs, engine.kb.embedder, server)
    results["llamaindex_ingest"] = ingest
    li_runs = [time_llamaindex(query_engine, calls, SEED_QUESTION) for _ in range(plan.reps)]
    results["llamaindex_seed_question"] = summarize_runs(li_runs)
    return results


# ------------------------------------------------------------------------------ 3. MultiHop-RAG


def multihop_ingest_and_retrieval(
    base_kb: Any, llm: LLM | None, plan: Plan, results: dict[str, Any]
) -> tuple[Any, list[Any], list[Any]]:
    """The MultiHop articles ingested into a collection of their own (timed), the first
    retrieval (builds the keyword indexes) and the retrieval latency. The new knowledge base
    shares `base_kb`'s embedder and Chroma client, and the engine answers with `llm` (None:
    retrieval only, no model started), so the process holds one of each, as `rag serve`
    does. Returns the engine, the documents and the question sample."""
    from rag.compose import build_engine
    from rag.knowledge_base import KnowledgeBase
    from rag_eval.data import Question, corpus_document, stratified_sample

    records = read_jsonl(MULTIHOP / "corpus.jsonl")
    raw_questions = read_jsonl(MULTIHOP / "questions_dev.jsonl")
    questions = [Question.from_record(r, i) for i, r in enumerate(raw_questions)]
    sample = stratified_sample(questions, plan.mh_questions, SAMPLE_SEED)
    needed = [d for q in sample for d in q.gold_doc_ids]
    articles = pick_articles(records, needed, plan.mh_articles, SAMPLE_SEED)
    docs = [corpus_document(r) for r in articles]
    results.update(articles=len(docs), sample_seed=SAMPLE_SEED)

    settings = base_kb.settings.model_copy(update={"collection": "multihop"})
    kb = KnowledgeBase(settings, base_kb.embedder, client=base_kb.client)
    engine = build_engine(settings, llm=llm, kb=kb)
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


def ingest_retrieval_rows(mh: dict) -> list[list[str]]:
    ingest, retrieval = mh["ingest"], mh["retrieval"]
    return [
        ["documents / chunks", f"{ingest['documents']} / {fmt_num(ingest['chunks'])}"],
        ["ingest wall time", f"{ingest['seconds']:.1f} s"],
        ["ingest chunks/s", f"{ingest['chunks_per_s']:.1f}"],
        ["first retrieval (builds the keyword indexes)", fmt_ms(mh["first_retrieval_ms"])],
        [
            f"retrieval p50 / p95 over {retrieval['n']} questions",
            f"{fmt_ms(retrieval['p50_ms'])} / {fmt_ms(retrieval['p95_ms'])}",
        ],
    ]


def ingest_retrieval_report(results: dict, out: Path) -> Path:
    """`--ingest-retrieval-only`: MultiHop ingest and retrieval latency, as Markdown and JSON."""
    mh = results["multihop"]
    blocks = [
        *header_blocks("Ingest and retrieval latency (MultiHop-RAG articles)", results),
        (
            "p",
            f"The full run's {mh['articles']} articles (the gold documents of its question "
            "sample, then a fixed random fill) into a fresh data dir, then "
            "`engine.retriever.retrieve` over the first dev questions; no LLM.",
        ),
        ("table", ["measure", "value"], ingest_retrieval_rows(mh)),
    ]
    return write_markdown(results, out, "latency-ingest-retrieval", blocks)


def multihop_benchmark(
    seed_engine: Any,
    plan: Plan,
    calls: Any,
    server: ModelServer,
    results: dict[str, Any],
    checkpoint: Callable[[], None],
) -> None:
    """Fills `results` step by step, calling `checkpoint` after each (the run takes long)."""
    from rag_eval.heldout import held_out_ranking

    engine, docs, sample = multihop_ingest_and_retrieval(
        seed_engine.kb, seed_engine.llm, plan, results
    )
    # The shipped ranking model was fitted on these dev questions: rank each with a fold model
    # that never saw it, as `rag eval` does, so the accuracy beside llama-index is held out.
    questions_bytes = (MULTIHOP / "questions_dev.jsonl").read_bytes()
    held_out, results["ranking_note"] = held_out_ranking(questions_bytes, engine.settings)
    if held_out is not None:
        engine.retriever.use_reranker(held_out)
    results["questions"] = []
    kb = engine.kb
    checkpoint()

    log("multihop: llama-index default ingest")
    query_engine, ingest = llamaindex_pipeline(docs, kb.embedder, server)
    results["llamaindex_ingest"] = ingest

    rows = results["questions"]
    for i, q in enumerate(sample):
        log(f"multihop: question {i + 1}/{len(sample)} ({q.question_type})")
        row: dict[str, Any] = {**base_row(q), "order": list(interleaved_order(i))}
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


# ------------------------------------------------------------------------------ report


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"


def fmt_num(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def fmt_ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def header_blocks(title: str, results: dict) -> list[Block]:
    """The title, the exact command, and when, where and on what commit it ran."""
    machine = results["machine"]
    line = (
        f"{machine.get('date')} · commit `{machine.get('git_commit')}` · {machine.get('nproc')} "
        f"CPUs · load average at start {machine.get('load_average_at_start')}"
    )
    if machine.get("load_average_at_end"):
        line += f", at end {machine['load_average_at_end']}"
    return [("h1", title), ("p", f"Command: `{results['command']}`"), ("p", line)]


def write_markdown(results: dict, out: Path, name: str, blocks: Sequence[Block]) -> Path:
    """<name>.json (every figure) and <name>.md (the report) in `out`; the JSON first, so a
    failing report still leaves the figures."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    path = out / f"{name}.md"
    path.write_text(report.render_markdown(blocks))
    return path


def comparison_table(title: str, ours: dict, li: dict, accuracy: bool = False) -> Block:
    """rag beside llama-index: the medians (with their ratio), the first ask when one question
    was repeated, LLM calls, accuracy when judged, errors."""
    ratios = [
        ("median time to first token", "ttft_ms_median", fmt_ms),
        ("median total", "total_ms_median", fmt_ms),
        ("median prompt tokens (tiktoken cl100k)", "prompt_tokens_median", fmt_num),
    ]
    # repeats of one question: their first ask missed the server's cache of the whole prompt
    ratios += [
        (label, key, fmt_ms)
        for label, key in (
            ("first ask: time to first token", "ttft_ms_first"),
            ("first ask: total", "total_ms_first"),
        )
        if ours.get(key) is not None and li.get(key) is not None
    ]
    rows = [
        [label, show(ours[key]), show(li[key]), fmt_ratio(ratio(ours[key], li[key]))]
        for label, key, show in ratios
    ]
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
    return ("table", [title, "rag", "llama-index", "rag / llama-index"], rows)


def ingest_table(rag_name: str, ours: dict, li_name: str, li: dict) -> Block:
    rows = [
        [
            name,
            fmt_num(ingest["documents"]),
            fmt_num(ingest["chunks"]),
            f"{ingest['seconds']:.1f} s",
            fmt_num(ingest["chunks_per_s"], 1),
        ]
        for name, ingest in ((rag_name, ours), (li_name, li))
    ]
    return ("table", ["ingest", "documents", "chunks", "wall", "chunks/s"], rows)


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


def speedup_and_goal(results: dict) -> tuple[float | None, str]:
    speedup = results["multihop"]["ttft_speedup"]
    return speedup, "met" if speedup is not None and speedup >= TTFT_GOAL else "not met"


def machine_blocks(results: dict) -> list[Block]:
    machine, plan = results["machine"], results["plan"]
    rows = [
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
    ]
    blocks: list[Block] = [
        ("h1", 'Latency: "Fast answers on a 2-core CPU"'),
        ("p", f"Command: `{results['command']}`"),
        ("table", ["machine", ""], rows),
    ]
    if plan["mode"] == "quick":
        blocks.append(("p", "**Quick mode: a smoke test, not benchmark results.**"))
    blocks.append(
        (
            "p",
            "Models: Qwen2.5-Coder-1.5B-Instruct Q4_K_M GGUF behind rag's local xllamacpp "
            f"server ({results['endpoint']['slots']} slots, prompt cache), all-MiniLM-L6-v2 "
            "int8 ONNX embedder. llama-index runs on the same server and embedder, in the "
            "same process.",
        )
    )
    return blocks


def summary_blocks(results: dict, plot_name: str) -> list[Block]:
    cold, seed, mh = results["cold_start"], results["seed"], results["multihop"]
    rag_seed, follow = seed["rag_seed_question"], seed["rag_follow_up"]
    speedup, goal = speedup_and_goal(results)
    after_setup = " after `rag setup`)" if results.get("setup") else ")"
    rows = [
        [
            "cold start to ready (`rag serve --ingest-if-empty`" + after_setup,
            fmt_ms(cold["to_ready_ms"]),
        ],
        ["cold start to first answer (`ask` API)", fmt_ms(cold["to_first_answer_ms"])],
        # The first ask is the honest figure: repeats of one question find the whole prompt
        # in the server's cache (their median is in section 1).
        ["seed question, first ask: time to first token", fmt_ms(rag_seed["ttft_ms_first"])],
        ["seed question, first ask: total", fmt_ms(rag_seed["total_ms_first"])],
        ["follow-up (condense included), first ask: total", fmt_ms(follow["total_ms_first"])],
        *restart_rows(results.get("cold_restart")),
        [
            f"MultiHop median TTFT, llama-index / rag (goal ≥ {TTFT_GOAL:.0f}×)",
            f"{fmt_ratio(speedup)} ({goal})",
        ],
        [
            "MultiHop answer accuracy, rag / llama-index",
            f"{fmt_num(mh['rag']['accuracy'], 3)} / {fmt_num(mh['llamaindex']['accuracy'], 3)}",
        ],
        [
            f"retrieval p50 / p95 at {fmt_num(mh['retrieval']['chunks'])} chunks",
            f"{fmt_ms(mh['retrieval']['p50_ms'])} / {fmt_ms(mh['retrieval']['p95_ms'])}",
        ],
        ["peak RSS, benchmark process", f"{results['memory']['self_peak_rss_mb']:,.0f} MB"],
    ]
    return [
        ("h2", "Summary"),
        ("table", ["measure", "value"], rows),
        ("img", "latency", Path(plot_name)),
    ]


def seed_cold_start_blocks(results: dict) -> list[Block]:
    cold = results["cold_start"]
    return [
        ("h3", "Cold start"),
        (
            "p",
            f"`{cold['command']}` with a fresh `RAG_DATA_DIR` and `RAG_LOCAL_LLM_GGUF` set to the "
            "verified GGUF (no re-assembly); it ingests seeds/, loads both models, warms the "
            "prompt cache, then prints `ready at`. The first answer is the seed question through "
            '`gradio_client` (`api_name="/ask"`). The OS file cache may already hold the GGUF.',
        ),
        cold_start_table(results),
        (
            "p",
            f"First answer: {json.dumps(cold['answer'])} (refused: {cold['refused']}, error: "
            f"{cold['error']})",
        ),
    ]


def seed_warm_blocks(results: dict) -> list[Block]:
    seed = results["seed"]
    rag_seed, follow = seed["rag_seed_question"], seed["rag_follow_up"]
    retrieval = seed["retrieval"]
    rows = [
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
        ["follow-up: condense part", fmt_ms(follow["condense_ms_median"]), "", follow["n"]],
        [
            f"retrieval p50 / p95 (golden questions, {retrieval['chunks']} chunks)",
            f"{fmt_ms(retrieval['p50_ms'])} / {fmt_ms(retrieval['p95_ms'])}",
            "",
            retrieval["n"],
        ],
    ]
    last_follow = follow["runs"][-1]
    return [
        ("h3", "Warm, in-process"),
        (
            "p",
            f"`build_engine` + `warm_up()` ({fmt_ms(seed['warm_up_ms'])}). Time to first token "
            "is measured to the first streamed text the user sees; total to the final answer "
            "(citation check included). Repeats of one question hit the server's prompt cache, "
            "so the first repetition is shown too.",
        ),
        ("table", ["measure", "median", "first run", "n"], rows),
        ("p", f"Answer: {json.dumps(rag_seed['runs'][-1]['answer'])}"),
        (
            "p",
            "Follow-up searched for: "
            f"{json.dumps(last_follow['detail'].get('question_used'))}; answer: "
            f"{json.dumps(last_follow['answer'])}",
        ),
        ingest_table(
            "rag (seed)", seed["ingest"], "llama-index default (seed)", seed["llamaindex_ingest"]
        ),
    ]


def llamaindex_seed_blocks(results: dict) -> list[Block]:
    seed, endpoint = results["seed"], results["endpoint"]
    li_seed = seed["llamaindex_seed_question"]
    return [
        ("h2", "2. llama-index default pipeline, seed question"),
        (
            "p",
            "`VectorStoreIndex.from_documents(docs, embed_model=<rag's MiniLMEmbedding>)` "
            "(default chunking: SentenceSplitter 1024/200, in-memory vector store), "
            "`.as_query_engine(llm=OpenAILike(<same server>, is_chat_model=True, "
            f"api_key='none', max_tokens={endpoint['max_tokens']}, "
            f"context_window={endpoint['context_window']}, temperature=0), streaming=True)` "
            "(defaults: top-2 chunks, compact-and-refine); the OpenAILike comes from "
            "`rag.llm.openai_compatible.llama_index_llm`, as in `rag eval`'s baseline. Its "
            "prompts are captured through llama-index's instrumentation and counted like rag's.",
        ),
        comparison_table("seed question", seed["rag_seed_question"], li_seed),
        ("p", f"llama-index answer: {json.dumps(li_seed['runs'][-1]['answer'])}"),
    ]


def multihop_blocks(results: dict) -> list[Block]:
    mh = results["multihop"]
    retrieval = mh["retrieval"]
    speedup, goal = speedup_and_goal(results)
    blocks: list[Block] = [
        ("h2", "3. MultiHop-RAG dev"),
        (
            "p",
            f"{mh['articles']} articles. The {mh['rag']['n']} questions are a fixed stratified "
            f"sample (seed {mh['sample_seed']}, by question_type; null_query ones are "
            "unanswerable and a refusal counts as correct), answered by both systems one "
            "question at a time, alternating which goes first.",
        ),
    ]
    if mh.get("ranking_note"):
        blocks.append(("p", mh["ranking_note"]))
    blocks += [
        ingest_table("rag", mh["ingest"], "llama-index default", mh["llamaindex_ingest"]),
        (
            "p",
            f"rag retrieval (`engine.retriever.retrieve`) over {retrieval['n']} questions at "
            f"{fmt_num(retrieval['chunks'])} chunks: p50 {fmt_ms(retrieval['p50_ms'])}, "
            f"p95 {fmt_ms(retrieval['p95_ms'])} (the first retrieval, which builds the keyword "
            f"index, took {fmt_ms(mh['first_retrieval_ms'])} and is not included).",
        ),
        comparison_table("MultiHop", mh["rag"], mh["llamaindex"], accuracy=True),
        (
            "p",
            f"Median TTFT speed-up (llama-index / rag): **{fmt_ratio(speedup)}** — goal ≥ "
            f"{TTFT_GOAL:.0f}×: **{goal}**.",
        ),
        *per_question_blocks(mh["questions"]),
    ]
    return blocks


def per_question_blocks(questions: Sequence[dict]) -> list[Block]:
    def cells(run: dict) -> list[str]:
        return [fmt_ms(run["ttft_ms"]), fmt_ms(run["total_ms"]), "✓" if run["correct"] else "✗"]

    headers = ["id", "type", "rag TTFT", "rag total", "rag ✓", "li TTFT", "li total", "li ✓"]
    rows = [
        [r["id"], r["question_type"], *cells(r["rag"]), *cells(r["llamaindex"])] for r in questions
    ]
    return [("h3", "Per question"), ("table", headers, rows)]


def memory_blocks(results: dict) -> list[Block]:
    memory = results["memory"]
    rows = [
        [
            "benchmark (rag + llama-index + in-process model server)",
            f"{memory['self_peak_rss_mb']:,.0f} MB",
        ],
        ["children (the cold-start `rag serve`)", f"{memory['children_peak_rss_mb']:,.0f} MB"],
    ]
    return [("h2", "4. Peak memory"), ("table", ["process", "peak RSS"], rows)]


def method_blocks(results: dict) -> list[Block]:
    endpoint = results["endpoint"]
    window, slots = endpoint["context_window"], endpoint["slots"]
    notes = [
        "Time to first token: from the call to the first streamed text the user sees (rag: "
        "the first `Token` event; llama-index: the first non-empty piece of `response_gen`); "
        "an answer that streams nothing (rag's refusal without a model call) counts when it "
        "arrives. Total: to the end of the answer (rag: its `Final` event, citation check "
        "included). Both include retrieval and embedding the question.",
        f"One model server for both systems: rag's local xllamacpp server (n_ctx "
        f"{window * slots} over {slots} slots, prompt cache on). llama-index is told the real "
        f"per-request window ({window} tokens): with OpenAILike's default 3900 it packs prompts "
        "the server rejects (HTTP 400), so it splits the two 1024-token chunks over more than "
        "one call when they do not fit (compact-and-refine, its default response mode); the "
        "LLM-calls row shows how often.",
        "Greedy decoding (temperature 0) and no client retries for both; a failed request is "
        "counted under errors and left out of the medians.",
        "Prompt tokens: tiktoken cl100k over the messages sent (rag: `result.tokens`; "
        "llama-index: summed over its calls), not the model's own tokenizer. LLM calls: rag's "
        "as its engine makes them (answer, condense), llama-index's through its "
        "instrumentation.",
        "Repeating one question reuses the server's prompt cache; MultiHop questions are each "
        "asked once, so there only the fixed prompt prefix is cached (rag's system prompt and "
        "worked examples, llama-index's system prompt).",
        "Accuracy: `rag_eval.metrics.contains_words` (whole words, a Yes/No gold as the "
        "answer's first word; `rag eval`'s answer_accuracy_words) against `answers`, citation "
        "marks removed; a refusal (`result.refused` or `is_refusal_text`) is correct for "
        "null_query and wrong otherwise.",
    ]
    return [
        ("h2", "Method notes"),
        ("ul", notes),
        ("p", "Details of every run are in latency.json."),
    ]


def latency_blocks(results: dict, plot_name: str) -> list[Block]:
    """The whole latency report, section by section."""
    return [
        *machine_blocks(results),
        *summary_blocks(results, plot_name),
        ("h2", "1. Seed corpus (seeds/)"),
        *seed_cold_start_blocks(results),
        *(one_shot_blocks(results) if results.get("one_shot") else []),
        *seed_warm_blocks(results),
        *llamaindex_seed_blocks(results),
        *multihop_blocks(results),
        *memory_blocks(results),
        *method_blocks(results),
    ]


def render_markdown(results: dict, plot_name: str) -> str:
    return report.render_markdown(latency_blocks(results, plot_name))


def write_report(results: dict, out: Path) -> Path:
    path = write_markdown(results, out, "latency", latency_blocks(results, "latency.png"))
    plot(results, out / "latency.png")
    return path


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
        "--one-shot-only", action="store_true", help="only the one-shot `rag ask` cases"
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

    from rag.compose import build_engine, build_knowledge_base, build_llm
    from rag.config import Settings
    from rag.llm.local import local_gguf

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
            kb = build_knowledge_base(bench_settings(work / "warm", gguf))
            results["multihop"] = {}
            multihop_ingest_and_retrieval(kb, None, plan, results["multihop"])
            results["machine"]["load_average_at_end"] = load_averages()
            log(f"wrote {ingest_retrieval_report(results, args.out)}")
            return 0
        if args.one_shot_only:
            results["one_shot"] = one_shot_benchmark(gguf, work / "one-shot", plan.reps)
            results["machine"]["load_average_at_end"] = load_averages()
            log(f"wrote {one_shot_report(results, args.out)}")
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
            results["machine"]["load_average_at_end"] = load_averages()
            log(f"wrote {cold_start_report(results, args.out)}")
            partial.unlink(missing_ok=True)
            return 0

        log("one-shot CLI")
        results["one_shot"] = one_shot_benchmark(gguf, work / "one-shot", plan.reps)
        checkpoint()
        settings = bench_settings(work / "warm", gguf)
        llm = build_llm(settings)  # starts this process's own model server
        server = model_server(llm, settings)
        results["endpoint"] = server.record()
        calls = make_call_log()
        engine = build_engine(settings, llm=RecordedLLM(llm, calls))
        results["seed"] = seed_benchmark(engine, plan, calls, server)
        checkpoint()
        results["multihop"] = {}
        multihop_benchmark(engine, plan, calls, server, results["multihop"], checkpoint)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["memory"] = peak_memory()
    results["machine"]["load_average_at_end"] = load_averages()
    results["wall_s"] = ms_since(started) / 1000
    path = write_report(results, args.out)
    partial.unlink(missing_ok=True)
    log(f"wrote {path} in {results['wall_s'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How fast the shipped model reads a short question's prompt, by llama.cpp server setting.

    RAG_DATA_DIR=DIR .venv/bin/python evals/reports/session15/prompt_speed.py SETTING...

DIR holds the seed article (`rag ingest seeds`). For each SETTING ("base", or
`name=value` of xllamacpp's CommonParams, `cpu.name=value` for both CPU parameter sets), a
server is started on 2 threads as rag starts it, the answer prompt's fixed prefix is read once,
then four seed questions with the passages rag shows for them are asked three times (the first
round untimed). Each setting runs in a process of its own. Prints the median prompt tokens/s
of the uncached part, its median time, and the written tokens/s.
"""

import json
import statistics
import subprocess
import sys
import urllib.request

import xllamacpp

from rag.answer.context import answer_messages, prompt_prefix, warm_up_messages
from rag.compose import build_engine
from rag.config import Settings
from rag.events import Passage, Sources
from rag.models import qwen_gguf_path

QUESTIONS = [
    "Who led Russia's delegation?",
    "How many prisoners were exchanged?",
    "Where were the talks held?",
    "What did Trump announce?",
]


def shown_passages(settings: Settings) -> list[tuple[str, list[str]]]:
    engine = build_engine(settings, llm=None)
    out = []
    for question in QUESTIONS:
        for event in engine.answer(question):
            if isinstance(event, Sources):
                out.append((question, [p.text for p in event.passages]))
                break
    return out


def server(setting: str, settings: Settings) -> xllamacpp.Server:
    p = xllamacpp.CommonParams()
    p.model.path = str(qwen_gguf_path(settings.models_dir))
    p.n_ctx, p.n_parallel, p.cache_prompt, p.verbosity = 4096, 2, True, 0
    p.no_extra_bufts, p.warmup, p.port = True, False, 8799
    p.cpuparams.n_threads = p.cpuparams_batch.n_threads = 2
    for item in setting.split(","):
        if item == "base":
            continue
        name, value = item.split("=")
        if name.startswith("cpu."):
            for params in (p.cpuparams, p.cpuparams_batch):
                setattr(params, name[4:], int(value))
        else:
            current = getattr(p, name)
            setattr(p, name, value == "1" if isinstance(current, bool) else type(current)(value))
    return xllamacpp.Server(p)


def ask(base: str, messages) -> dict:
    body = {"messages": messages, "max_tokens": 8, "temperature": 0}
    request = urllib.request.Request(
        base + "/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    return json.load(urllib.request.urlopen(request))["timings"]


def measure(setting: str) -> None:
    """One setting, in a process of its own (one model server per process and port)."""
    settings = Settings()
    passages = shown_passages(settings)
    prefix = prompt_prefix()
    running = server(setting, settings)
    address = running.listening_address.rstrip("/")
    base = address if address.startswith("http") else f"http://{address}"
    ask(base, warm_up_messages(prefix))
    rates, times, written = [], [], []
    for round_ in range(3):
        for question, texts in passages:
            shown = [Passage(j + 1, "d", "t", "", t, 0, 0) for j, t in enumerate(texts)]
            t = ask(base, answer_messages(prefix, shown, question))
            if round_:
                rates.append(t["prompt_n"] / t["prompt_ms"] * 1000)
                times.append(t["prompt_ms"])
                written.append(t["predicted_n"] / t["predicted_ms"] * 1000)
    print(
        f"| {setting} | {statistics.median(rates):.1f} | {statistics.median(times):.0f} "
        f"| {statistics.median(written):.1f} |",
        flush=True,
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        measure(sys.argv[2])
    else:
        for setting in sys.argv[1:] or ["base"]:
            subprocess.run([sys.executable, __file__, "--one", setting], check=True)

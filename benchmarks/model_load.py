"""The shipped model's start-up and speed with and without llama.cpp's weight repacking.

    .venv/bin/python benchmarks/model_load.py [--runs 3] [--out benchmarks/results]

At load, llama.cpp can repack the GGUF's weights into layouts for the CPU's wider kernels
("extra buffer types"). A one-shot `rag ask` pays the model's load on every run, so this
measures, in a fresh process per run (alternating the two settings): the time to load the
model, and one answer-sized request on the seed article (prompt read per second, tokens written
per second, the request's wall time), greedy, so both settings must write the same text.
Writes model-load.md into --out.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rag_eval.provenance import run_line  # noqa: E402
from rag_eval.report import render_markdown  # noqa: E402

# One run, in a child process so each starts cold: prints one JSON line.
_CHILD = r"""
import json, sys, time, httpx, xllamacpp
from rag.config import get_settings
from rag.llm.local import local_gguf
repack = sys.argv[1] == "repack"
params = xllamacpp.CommonParams()
params.model.path = str(local_gguf(get_settings()))
params.n_ctx, params.n_parallel, params.port, params.verbosity = 4096, 2, 0, 0
params.cpuparams.n_threads = params.cpuparams_batch.n_threads = 2
params.no_extra_bufts = not repack
params.warmup = repack  # the default start-up, as it was, against rag's
started = time.perf_counter()
server = xllamacpp.Server(params)
load = time.perf_counter() - started
url = server.listening_address.rstrip("/")
url = url if url.startswith("http") else "http://" + url
article = open(sys.argv[2], encoding="utf-8").read()[:2500]
messages = [{"role": "user", "content": "Summarize in one sentence:\n" + article}]
started = time.perf_counter()
reply = httpx.post(url + "/v1/chat/completions", timeout=600, json={
    "messages": messages, "max_tokens": 64, "temperature": 0}).json()
print(json.dumps({
    "load_s": load,
    "request_s": time.perf_counter() - started,
    "prompt_per_s": reply["timings"]["prompt_per_second"],
    "predicted_per_s": reply["timings"]["predicted_per_second"],
    "prompt_tokens": reply["timings"]["prompt_n"],
    "text": reply["choices"][0]["message"]["content"],
}))
"""


def one_run(setting: str, article: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, setting, str(article)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each setting")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    article = next(iter(sorted((REPO / "seeds").glob("*.txt"))))
    runs: dict[str, list[dict]] = {"repack": [], "as stored": []}
    for _ in range(args.runs):
        for setting, key in (("repack", "repack"), ("stored", "as stored")):
            runs[key].append(one_run(setting, article))
            print(key, json.dumps(runs[key][-1])[:200], file=sys.stderr)

    def median(key: str, field: str) -> str:
        return f"{statistics.median(r[field] for r in runs[key]):.2f}"

    rows = [
        [
            key,
            median(key, "load_s"),
            median(key, "prompt_per_s"),
            median(key, "predicted_per_s"),
            median(key, "request_s"),
        ]
        for key in runs
    ]
    texts = {r["text"] for rs in runs.values() for r in rs}
    blocks = [
        ("h1", "The shipped model: load and speed with and without weight repacking"),
        ("p", run_line()),
        (
            "p",
            f"Medians of {args.runs} runs per setting, alternating, each a fresh process "
            "(2 threads, 4,096 context): the model's load, then one request (the seed "
            f"article's first 2,500 characters, {runs['repack'][0]['prompt_tokens']} prompt "
            "tokens, up to 64 written, greedy). 'repack' is llama.cpp's default start-up "
            "(weights repacked for the CPU's kernels, a warm-up decode); 'as stored' is rag's.",
        ),
        (
            "table",
            ["weights", "load s", "prompt tokens/s", "written tokens/s", "request s"],
            rows,
        ),
        ("p", f"Same text written by both: {'yes' if len(texts) == 1 else 'no'}."),
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "model-load.md").write_text(render_markdown(blocks), encoding="utf-8")
    print(f"wrote {args.out / 'model-load.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

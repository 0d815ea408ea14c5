"""Ingest of large files: wall time, chunks/s and peak memory of `rag ingest`, one file per run,
each into a fresh data dir, as a user would run it.

    .venv/bin/python benchmarks/large_files.py [--sizes-mb [MB ...]] [--pdf FILE]
        [--out benchmarks/results]

Text files are real news articles (MultiHop-RAG's corpus, repeated in order past its end) up to
each size. `--pdf` adds a long PDF; the one measured is Debian's doxygen manual (336 pages):
`apt-get download doxygen-doc && dpkg-deb -x doxygen-doc_*.deb x`, then
`--pdf x/usr/share/doc/doxygen/doxygen_manual.pdf`. Peak memory is the child process's maximum
resident set size; CPU seconds are its user + system time, what to compare on a shared machine,
where wall time depends on the other load. Writes large-files.md and .json into --out.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rag.models import minilm_dynamic_onnx_path  # noqa: E402
from rag_eval.provenance import run_line  # noqa: E402
from rag_eval.report import render_markdown  # noqa: E402

CORPUS = Path("/work/shared/datasets/multihop-rag/corpus.jsonl")


def write_text(path: Path, size: int) -> None:
    """Real article text up to `size` bytes."""
    articles = [json.loads(line)["text"] for line in CORPUS.open()]
    written, i = 0, 0
    with path.open("w", encoding="utf-8") as out:
        while written < size:
            block = articles[i % len(articles)] + "\n\n"
            out.write(block)
            written += len(block.encode())
            i += 1


def ingest(path: Path, data_dir: Path) -> dict:
    """One `rag ingest` of one file; its wall time, CPU time, outcome and peak RSS. The data
    dir is new but set up, as after `make run` or `rag setup`: the embedder's int8 model is
    derived (once per data dir) before the clock starts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(RAG_DATA_DIR=str(data_dir), RAG_CONFIG=str(data_dir / "none.toml"))
    minilm_dynamic_onnx_path(data_dir / "models")
    out, err = data_dir.with_suffix(".out"), data_dir.with_suffix(".err")
    started = time.perf_counter()
    with out.open("w") as stdout_file, err.open("w") as stderr_file:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "rag"), "ingest", str(path)],
            env=env,
            stdout=stdout_file,
            stderr=stderr_file,
        )
        _, status, usage = os.wait4(process.pid, 0)  # the child's own peak RSS
    seconds = time.perf_counter() - started
    returncode = os.waitstatus_to_exitcode(status)
    stdout, stderr = out.read_text(), err.read_text()
    match = re.search(r"index: (\d+) documents, (\d+) chunks", stdout)
    chunks = int(match.group(2)) if match else 0
    return {
        "file": path.name,
        "mb": round(path.stat().st_size / 1e6, 1),
        "exit": returncode,
        "seconds": round(seconds, 1),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "chunks": chunks,
        "chunks_per_s": round(chunks / seconds, 1) if seconds else None,
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
        "errors": stderr.strip().splitlines()[-1:] if returncode else [],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes-mb", type=float, nargs="*", default=[2, 19], help="text sizes; none: the PDF only"
    )
    parser.add_argument("--pdf", type=Path, help="also ingest this (long) PDF")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rag-large-"))
    rows = []
    try:
        files = []
        if args.pdf:
            files.append(args.pdf)
        for mb in sorted(args.sizes_mb):
            path = work / f"articles-{mb:g}mb.txt"
            write_text(path, int(mb * 1e6))
            files.append(path)
        for number, path in enumerate(files):
            row = ingest(path, work / f"data-{number}")
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    headers = ["file", "MB", "exit", "seconds", "CPU s", "chunks", "chunks/s", "peak RSS (MB)"]
    table = [
        [r["file"], r["mb"], r["exit"], r["seconds"], r["cpu_seconds"], r["chunks"],
         r["chunks_per_s"], r["peak_rss_mb"]]
        for r in rows
    ]  # fmt: skip
    blocks = [
        ("h1", "Large files: `rag ingest` time and memory"),
        (
            "p",
            run_line()
            + " One file per run, each into a fresh data dir where the embedder's int8 model "
            "was already derived (as `rag setup` does); wall time includes start-up and the "
            "embedder load.",
        ),
        ("table", headers, table),
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "large-files.md").write_text(render_markdown(blocks), encoding="utf-8")
    (args.out / "large-files.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")
    print(f"wrote {args.out / 'large-files.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

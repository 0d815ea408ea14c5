"""The shipped embedder alone: chunks/s on MultiHop-RAG chunks, bare text vs. with the
title/source/date header that chunks carried until CHUNK_SCHEMA 3.

    .venv/bin/python benchmarks/embedder.py [--articles 60] [--out benchmarks/results]

No Chroma, no LLM: what ingest speed is bounded by. Writes embedder.md into --out.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import rag  # noqa: E402,F401  (offline environment first)

CORPUS = Path("/work/shared/datasets/multihop-rag/corpus.jsonl")
GROUP = 256  # chunks per embedding call, as rag.store.EMBED_GROUP_CHUNKS


def rate(embedder, texts: list[str]) -> float:
    """Chunks per second, embedded in groups as ingest does (after one warm-up batch)."""
    embedder.embed(texts[:32])
    started = time.perf_counter()
    for start in range(0, len(texts), GROUP):
        embedder.embed(texts[start : start + GROUP])
    return len(texts) / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=60)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()

    from rag.config import Settings
    from rag.embed import MiniLMEmbedding
    from rag.evaluate import corpus_document, git_commit
    from rag.ingest import chunk_document, make_splitter

    settings = Settings()
    splitter = make_splitter(settings.chunk_size, settings.chunk_overlap)
    with CORPUS.open() as handle:
        records = [json.loads(line) for _, line in zip(range(args.articles), handle, strict=False)]
    nodes = [n for r in records for n in chunk_document(corpus_document(r), splitter)]
    bare = [n.get_content(metadata_mode="embed") for n in nodes]
    with_header = [n.get_content(metadata_mode="llm") for n in nodes]  # title, source, date
    embedder = MiniLMEmbedding(threads=settings.local_llm_threads)
    rows = [("bare text (rag)", rate(embedder, bare)), ("with header", rate(embedder, with_header))]

    command = shlex.join([".venv/bin/python", "benchmarks/embedder.py", *sys.argv[1:]])
    lines = [
        "# Embedder alone",
        "",
        f"Command: `{command}`",
        "",
        f"{datetime.now(UTC).isoformat(timespec='seconds')} · commit `{git_commit(REPO)}` · "
        f"{len(os.sched_getaffinity(0))} CPUs · load average {os.getloadavg()[0]:.2f} at the end",
        "",
        f"{len(nodes):,} chunks of {args.articles} MultiHop-RAG articles "
        f"({settings.chunk_size} tokens), all-MiniLM-L6-v2 int8 ONNX, groups of {GROUP}.",
        "",
        "| text embedded | chunks/s |",
        "|---|---|",
        *(f"| {name} | {value:.1f} |" for name, value in rows),
        "",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "embedder.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The shipped embedder alone: chunks/s on MultiHop-RAG chunks, the shipped ONNX file as it is
(int8 weights, fp32 products) vs the int8-products model rag derives from it, and how closely
their vectors agree; also the title/source/date header that chunks carried until CHUNK_SCHEMA 3.

    .venv/bin/python benchmarks/embedder.py [--articles 60] [--out benchmarks/results]

No Chroma, no LLM: what ingest speed is bounded by. Writes embedder.md into --out.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

import rag  # noqa: E402,F401  (offline environment first)
from rag.knowledge_base.store import EMBED_GROUP_CHUNKS as GROUP  # noqa: E402
from rag_eval.data import read_jsonl  # noqa: E402
from rag_eval.provenance import git_commit  # noqa: E402
from rag_eval.report import Block, render_markdown  # noqa: E402

CORPUS = Path("/work/shared/datasets/multihop-rag/corpus.jsonl")


def rate(embedder, texts: list[str]) -> float:
    """Chunks per second, embedded in groups as ingest does (after one warm-up batch)."""
    embedder.embed(texts[:32])
    started = time.perf_counter()
    for start in range(0, len(texts), GROUP):
        embedder.embed(texts[start : start + GROUP])
    return len(texts) / (time.perf_counter() - started)


def agreement(reference, candidate, texts: list[str], queries: int = 200) -> tuple[float, float]:
    """Mean cosine between the two models' vectors of each text, and the share of each of
    `queries` texts' 10 nearest neighbours (by the reference) that the candidate also ranks
    in its 10 nearest: what a dense search would see change."""
    a = np.array(reference.embed(texts))
    b = np.array(candidate.embed(texts))
    cosine = float((a * b).sum(axis=1).mean())
    top_a = np.argsort(-(a[:queries] @ a.T), axis=1)[:, 1:11]
    top_b = np.argsort(-(b[:queries] @ b.T), axis=1)[:, 1:11]
    overlap = np.mean([len(set(x) & set(y)) / 10 for x, y in zip(top_a, top_b, strict=True)])
    return cosine, float(overlap)


def report_blocks(
    command: str,
    chunks: int,
    articles: int,
    chunk_size: int,
    batch: int,
    rows: list[tuple[str, str, float]],
    cosine: float,
    overlap: float,
) -> list[Block]:
    """The report: what ran, on which machine and commit, the rates, and the agreement."""
    return [
        ("h1", "Embedder alone"),
        ("p", f"Command: `{command}`"),
        (
            "p",
            f"{datetime.now(UTC).isoformat(timespec='seconds')} · commit `{git_commit(REPO)}` · "
            f"{len(os.sched_getaffinity(0))} CPUs · load average {os.getloadavg()[0]:.2f} at "
            "the end",
        ),
        (
            "p",
            f"{chunks:,} chunks of {articles} MultiHop-RAG articles ({chunk_size} tokens), "
            f"all-MiniLM-L6-v2, groups of {GROUP}, batches of {batch}.",
        ),
        (
            "table",
            ["model", "text embedded", "chunks/s"],
            [[model, text, f"{value:.1f}"] for model, text, value in rows],
        ),
        (
            "p",
            f"Agreement of the int8-products vectors with the shipped file's (bare text, "
            f"{chunks:,} chunks): mean cosine {cosine:.4f}; of each of 200 chunks' 10 nearest "
            f"chunks, {overlap:.1%} are also among its 10 nearest with int8 products.",
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=60)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()

    from rag.config import Settings
    from rag.embed import MiniLMEmbedding
    from rag.ingest import chunk_document, make_splitter
    from rag.models import minilm_onnx_path
    from rag_eval.data import corpus_document

    settings = Settings()
    splitter = make_splitter(settings.chunk_size, settings.chunk_overlap)
    records = read_jsonl(CORPUS)[: args.articles]
    nodes = [n for r in records for n in chunk_document(corpus_document(r), splitter)]
    bare = [n.get_content(metadata_mode="embed") for n in nodes]
    with_header = [n.get_content(metadata_mode="llm") for n in nodes]  # title, source, date
    threads = settings.local_llm_threads
    shipped = MiniLMEmbedding(settings.models_dir, threads=threads, onnx_path=minilm_onnx_path())
    derived = MiniLMEmbedding(settings.models_dir, threads=threads)  # what rag runs
    rows = [
        ("shipped file as is (fp32 products)", "bare text", rate(shipped, bare)),
        ("int8 products (rag)", "bare text", rate(derived, bare)),
        ("shipped file as is (fp32 products)", "with header", rate(shipped, with_header)),
        ("int8 products (rag)", "with header", rate(derived, with_header)),
    ]
    cosine, overlap = agreement(shipped, derived, bare)

    command = shlex.join([".venv/bin/python", "benchmarks/embedder.py", *sys.argv[1:]])
    blocks = report_blocks(
        command,
        len(nodes),
        args.articles,
        settings.chunk_size,
        derived.embed_batch_size,
        rows,
        cosine,
        overlap,
    )
    text = render_markdown(blocks)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "embedder.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

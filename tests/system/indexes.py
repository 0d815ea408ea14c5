"""Helpers for ingest system tests: small corpora of real articles, an index read straight from
Chroma in a separate process, and reading `rag ingest`'s progress bar."""

from __future__ import annotations

import json
import os
import re
import selectors
import subprocess
import sys
import time
from pathlib import Path

import pytest

CORPUS = Path("/work/shared/datasets/multihop-rag/corpus.jsonl")

# Reads an index straight from Chroma in a separate process (never two clients in this one):
# every chunk with its document, text and embedding (which must be readable), and the manifest.
DUMP = """
import json, sys
import chromadb
from chromadb.config import Settings
client = chromadb.PersistentClient(sys.argv[1], settings=Settings(anonymized_telemetry=False))
chunks = client.get_collection("documents").get(include=["documents", "metadatas", "embeddings"])
manifest = client.get_collection("documents__documents").get(include=["metadatas"])
print(json.dumps({
    "chunk_ids": chunks["ids"],
    "chunks": {
        i: [json.loads(m["_node_content"])["metadata"]["doc_id"], text]
        for i, text, m in zip(chunks["ids"], chunks["documents"], chunks["metadatas"])
    },
    "embeddings": {i: [round(float(x), 4) for x in e] for i, e in zip(chunks["ids"],
                                                                      chunks["embeddings"])},
    "documents": {
        i: [m["content_hash"], m["chunks"]] for i, m in zip(manifest["ids"], manifest["metadatas"])
    },
}))
"""


def dump_index(data_dir: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", DUMP, str(data_dir / "chroma")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout)


def write_articles(folder: Path, first: int, count: int, chars: int = 1200) -> Path:
    """`count` real news articles (from MultiHop-RAG's corpus), `first` onwards, as text files
    in the seed format."""
    if not CORPUS.is_file():
        pytest.skip(f"{CORPUS} not available")
    folder.mkdir(parents=True, exist_ok=True)
    with CORPUS.open() as handle:
        for i, line in enumerate(handle):
            if i < first:
                continue
            if i >= first + count:
                break
            article = json.loads(line)
            body = article["text"][:chars].rsplit("\n", 1)[0]
            header = f"date {article['published_at'][:10]} {article['title']}\n\n"
            (folder / f"article_{i:03d}.txt").write_text(header + body)
    return folder


def wait_for_progress(process: subprocess.Popen, done: int, timeout: float) -> tuple[int, int]:
    """Read the tqdm bar on stderr until it reports at least `done` documents written."""
    deadline = time.monotonic() + timeout
    selector = selectors.DefaultSelector()
    selector.register(process.stderr, selectors.EVENT_READ)
    seen = b""
    while (remaining := deadline - time.monotonic()) > 0:
        if not selector.select(remaining):
            continue
        chunk = os.read(process.stderr.fileno(), 65536)
        if not chunk:
            pytest.fail(f"`rag ingest` ended before {done} documents: {seen.decode()[-2000:]}")
        seen += chunk
        counts = re.findall(rb"ingesting:.*?(\d+)/(\d+) \[", seen)
        if counts and int(counts[-1][0]) >= done:
            return int(counts[-1][0]), int(counts[-1][1])
    pytest.fail(f"no progress to {done} documents in {timeout}s: {seen.decode()[-2000:]}")

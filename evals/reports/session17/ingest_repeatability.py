"""Two ingests of the same documents on one machine: are the stored embeddings the same?
Each goes into a fresh data dir (a temporary folder, the shipped models linked in), then every
chunk's vector in one is compared with the same chunk's in the other.

    .venv/bin/python evals/reports/session17/ingest_repeatability.py evals/realdocs-b/docs
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import chromadb
import numpy as np

REPO = Path(__file__).resolve().parents[3]
MODELS = REPO / ".rag" / "models"


def ingest(docs: str, data_dir: Path) -> dict[str, np.ndarray]:
    data_dir.mkdir()
    (data_dir / "models").symlink_to(MODELS)
    env = {**os.environ, "RAG_DATA_DIR": str(data_dir)}
    rag = Path(sys.executable).parent / "rag"
    subprocess.run([str(rag), "ingest", docs], env=env, check=True, capture_output=True)
    client = chromadb.PersistentClient(path=str(data_dir / "chroma"))
    chunks = client.get_collection("documents").get(include=["embeddings"])
    return dict(zip(chunks["ids"], np.asarray(chunks["embeddings"]), strict=True))


with tempfile.TemporaryDirectory() as scratch:
    first = ingest(sys.argv[1], Path(scratch) / "first")
    second = ingest(sys.argv[1], Path(scratch) / "second")
shared = sorted(set(first) & set(second))
identical = sum(np.array_equal(first[k], second[k]) for k in shared)
cosines = [
    float(first[k] @ second[k]) / float(np.linalg.norm(first[k]) * np.linalg.norm(second[k]))
    for k in shared
]
print(f"chunks: {len(first)} and {len(second)}, {len(shared)} in both")
print(f"identical vectors: {identical} of {len(shared)}; lowest cosine {min(cosines):.6f}")

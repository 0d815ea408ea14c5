"""The knowledge base on a Chroma server (`chroma run`) instead of embedded Chroma."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from indexes import write_articles

from rag.config import Settings
from rag.knowledge_base import KnowledgeBase, doc_id_for
from rag.retrieval import Retriever

STARTUP_TIMEOUT = 60.0


def heartbeat(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=1) as reply:
            return "nanosecond heartbeat" in json.load(reply)
    except (OSError, ValueError):
        return False


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory, free_port, bin_dir) -> Iterator[str]:
    port = free_port()
    path = tmp_path_factory.mktemp("chroma-server")
    log = (path / "server.log").open("wb")
    server = subprocess.Popen(
        [
            *(str(bin_dir / "chroma"), "run", "--path", str(path / "db")),
            *("--host", "127.0.0.1", "--port", str(port)),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not heartbeat(url):
            if server.poll() is not None:
                pytest.fail(f"chroma exited with {server.returncode}: {_log(path)}")
            if time.monotonic() > deadline:
                pytest.fail(f"chroma did not answer its heartbeat in {STARTUP_TIMEOUT}s")
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.wait(timeout=0.1)  # poll again shortly; returns at once if it dies
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def _log(path: Path) -> str:
    return (path / "server.log").read_text(errors="replace")[-2000:]


@pytest.fixture
def server_settings(chroma_url, settings) -> Settings:
    # one collection per test: the server outlives the tests of this module
    return settings.model_copy(
        update={"chroma_url": chroma_url, "collection": f"test-{uuid.uuid4().hex[:12]}"}
    )


def test_ingest_and_retrieve_through_a_chroma_server(server_settings, embedder, seed_dir):
    kb = KnowledgeBase(server_settings, embedder)
    assert type(kb.client).__name__ != "PersistentClient"
    assert not (server_settings.data_dir / "chroma").exists()  # nothing embedded on disk
    report = kb.ingest([seed_dir])
    assert report.errors == [] and len(report.added) == 1 and report.chunks > 3

    result = Retriever(server_settings, kb).retrieve("Who was Russia's lead negotiator?")
    top = getattr(result, "candidates", result)[0]
    assert "Medinsky" in top.node.node.get_content(metadata_mode="none")
    assert top.node.node.metadata["doc_id"] == report.added[0]


def test_reingest_is_idempotent_and_seen_by_another_client(server_settings, embedder, seed_dir):
    kb = KnowledgeBase(server_settings, embedder)
    first = kb.ingest([seed_dir])
    ids = sorted(kb.chunks.get(include=[])["ids"])
    assert len(ids) == first.chunks

    other = KnowledgeBase(server_settings, embedder)  # a second process would see the same
    second = other.ingest([seed_dir])
    assert second.unchanged == first.added and second.chunks == 0
    assert sorted(other.chunks.get(include=[])["ids"]) == ids
    assert other.documents() == kb.documents()

    (seed,) = seed_dir.iterdir()
    assert other.delete(doc_id_for(seed))
    assert kb.stats() == {"documents": 0, "chunks": 0}


def test_two_concurrent_ingests_through_the_server_equal_one_clean_ingest(
    chroma_url, tmp_path, cli_env, bin_dir, embedder
):
    """With a Chroma server the server serialises writes: two `rag ingest` of disjoint folders
    at once leave what one ingest of both builds, every embedding readable."""
    a = write_articles(tmp_path / "a", 0, 30)
    b = write_articles(tmp_path / "b", 30, 30)

    def env(collection: str) -> dict:
        return cli_env(tmp_path / "data", RAG_CHROMA_URL=chroma_url, RAG_COLLECTION=collection)

    together, clean = f"together-{uuid.uuid4().hex[:8]}", f"clean-{uuid.uuid4().hex[:8]}"
    runs = [
        subprocess.Popen([str(bin_dir / "rag"), "ingest", str(folder)], env=env(together),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for folder in (a, b)
    ]  # fmt: skip
    for run in runs:
        _, err = run.communicate(timeout=600)
        assert run.returncode == 0, err
    reference = subprocess.run(
        [str(bin_dir / "rag"), "ingest", str(a), str(b)],
        env=env(clean),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert reference.returncode == 0, reference.stderr

    def read(collection: str) -> tuple[dict, dict]:
        kb = KnowledgeBase(
            Settings(data_dir=tmp_path / "data", chroma_url=chroma_url, collection=collection,
                     _env_file=None),
            embedder,
        )  # fmt: skip
        got = kb.chunks.get(include=["documents", "embeddings"])
        return dict(zip(got["ids"], got["documents"], strict=True)), dict(
            zip(got["ids"], got["embeddings"], strict=True)
        )

    (texts, vectors), (clean_texts, clean_vectors) = read(together), read(clean)
    assert texts == clean_texts and len(texts) > 60
    for chunk_id, vector in clean_vectors.items():
        mine = np.asarray(vectors[chunk_id])
        cosine = mine @ vector / (np.linalg.norm(mine) * np.linalg.norm(vector))
        assert cosine > 0.98, chunk_id  # int8 activations scale per embedding batch

"""Ingest with the real embedder: `rag ingest` killed midway is repaired exactly by the next run,
and the shipped MiniLM embedder itself behaves (dimensions, norm, meaning, retrieval)."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
from indexes import dump_index, wait_for_progress, write_articles

from rag.knowledge_base import KnowledgeBase
from rag.retrieval import Retriever

N_DOCS = 200  # several embedding groups (EMBED_GROUP_CHUNKS) of a few documents each
DOC_CHARS = 1200  # several chunks per document: the run lasts long enough to kill midway
KILL_AFTER = 5  # documents fully written


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    return write_articles(tmp_path / "corpus", 0, N_DOCS, DOC_CHARS)


def test_ingest_killed_midway_is_repaired_exactly(corpus_dir, tmp_path, cli_env, bin_dir):
    rag = [str(bin_dir / "rag"), "ingest", str(corpus_dir)]
    killed = subprocess.Popen(
        rag,
        cwd=tmp_path,
        env=cli_env(tmp_path / "a"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        done, total = wait_for_progress(killed, KILL_AFTER, timeout=300)
        killed.send_signal(signal.SIGKILL)
    finally:
        killed.kill()
        killed.wait(timeout=60)
        killed.stderr.close()
    assert killed.returncode == -signal.SIGKILL
    assert total == N_DOCS

    partial = dump_index(tmp_path / "a")
    finished = len(partial["documents"])
    assert KILL_AFTER <= done <= finished < N_DOCS, "the kill did not land midway"

    resumed = subprocess.run(
        rag, cwd=tmp_path, env=cli_env(tmp_path / "a"), capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"added {N_DOCS - finished}, updated 0, unchanged {finished}" in resumed.stdout

    clean = subprocess.run(
        rag, cwd=tmp_path, env=cli_env(tmp_path / "b"), capture_output=True, text=True, timeout=600
    )
    assert clean.returncode == 0, clean.stderr
    assert f"added {N_DOCS}, updated 0, unchanged 0" in clean.stdout

    repaired, reference = dump_index(tmp_path / "a"), dump_index(tmp_path / "b")
    assert len(repaired["chunk_ids"]) == len(set(repaired["chunk_ids"]))  # no duplicates
    assert set(repaired["chunk_ids"]) == set(reference["chunk_ids"])  # nothing missing or extra
    assert repaired["chunks"] == reference["chunks"]  # same texts, same documents
    assert repaired["documents"] == reference["documents"]
    assert len(repaired["documents"]) == N_DOCS
    for doc_id, (_hash, count) in repaired["documents"].items():  # manifest agrees with chunks
        assert count == sum(1 for d, _ in repaired["chunks"].values() if d == doc_id)


# ------------------------------------------------------------------ the real embedder


def test_minilm_vectors_are_384_dimensional_unit_vectors(embedder):
    texts = [
        "Short.",
        "Russia's lead negotiator, Vladimir Medinsky, said both parties agreed.",
        " ".join(["The okapi walked through the rainforest eating leaves."] * 80),  # truncated
    ]
    vectors = np.array(embedder.get_text_embedding_batch(texts))
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Batched (with padding) each text gets nearly the vector it gets alone: int8 activations
    # are scaled per batch, so not exactly; alone it is exactly the same every time.
    alone = np.array([embedder.get_text_embedding(t) for t in texts])
    assert ((vectors * alone).sum(axis=1) > 0.98).all()
    query = np.array(embedder.get_query_embedding(texts[1]))
    assert np.allclose(query, alone[1], atol=1e-6)


def test_int8_minilm_is_derived_once_and_agrees_with_the_shipped_file(embedder, tmp_path):
    from rag.embed import MiniLMEmbedding
    from rag.models import minilm_dynamic_onnx_path, minilm_onnx_path

    derived = minilm_dynamic_onnx_path(tmp_path)
    made = derived.stat().st_mtime_ns
    assert minilm_dynamic_onnx_path(tmp_path) == derived  # cached, not derived again
    assert derived.stat().st_mtime_ns == made
    assert [p.name for p in tmp_path.iterdir()] == [derived.name]  # no scratch files left
    shipped = MiniLMEmbedding(tmp_path, onnx_path=minilm_onnx_path())
    texts = [
        "Russia's lead negotiator, Vladimir Medinsky, said both parties agreed.",
        "The central bank raised interest rates by a quarter point on Wednesday.",
        "The okapi walked through the rainforest eating leaves.",
    ]
    reference = np.array(shipped.get_text_embedding_batch(texts))
    int8 = np.array(embedder.get_text_embedding_batch(texts))
    assert ((reference * int8).sum(axis=1) > 0.97).all()


def test_minilm_puts_a_paraphrase_closer_than_an_unrelated_sentence(embedder):
    anchor, paraphrase, unrelated = (
        np.array(v)
        for v in embedder.get_text_embedding_batch(
            [
                "Russia's chief negotiator was Vladimir Medinsky.",
                "Vladimir Medinsky led the Russian delegation at the talks.",
                "The recipe calls for two cups of flour and a pinch of salt.",
            ]
        )
    )
    assert anchor @ paraphrase > 0.5
    assert anchor @ paraphrase > anchor @ unrelated + 0.3


def test_minilm_returns_each_vector_in_its_texts_place_whatever_the_batching(embedder):
    # batches are grouped by wordpiece count, which character length predicts poorly in code
    texts = [
        "gss_init_sec_context(&minor, cred, &ctx, target_name, GSS_C_NO_OID, 0, 0)",
        "The okapi walked slowly through the rainforest, eating leaves from the trees there.",
        *(f"Short note number {i} about the prisoner exchange." for i in range(40)),
        "speexenc --comp 4 --vbr --dtx input.wav output.spx",
    ]
    together = np.array(embedder.get_text_embedding_batch(texts))
    alone = np.array([embedder.get_text_embedding_batch([t])[0] for t in texts])
    # the int8 model's activation scales depend on the batch, so vectors agree closely, not
    # exactly; a vector in another text's place would agree far less
    assert ((together * alone).sum(axis=1) > 0.95).all()


def test_retrieval_with_the_real_embedder_finds_the_negotiator(embedder, settings, seed_dir):
    kb = KnowledgeBase(settings, embedder)
    assert kb.ingest([seed_dir]).errors == []
    assert kb.chunks.metadata["embed_model"] == embedder.model_name
    result = Retriever(settings, kb).retrieve("Who led Russia's delegation?")
    ranked = getattr(result, "candidates", result)
    texts = [c.node.node.get_content(metadata_mode="none") for c in ranked]
    # within the passages a question gets (top_k), and passing the relevance gate
    first = next(i for i, text in enumerate(texts) if "Medinsky" in text)
    assert first < settings.top_k
    hit = ranked[first]
    assert hit.dense_similarity is not None and hit.dense_similarity > settings.min_dense_score
    assert sum("Medinsky" in text for text in texts) == 1

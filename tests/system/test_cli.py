"""`rag` as a user runs it: subprocesses with a data dir in tmp and SmolLM2 as the local model."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from rag.config import Settings

QUESTIONS = ["Who was Russia's lead negotiator?", "What did he say?"]
TOP_K = Settings(_env_file=None).top_k  # passages shown per question: citations number 1..TOP_K


@pytest.fixture
def rag(bin_dir, cli_env, smollm2, tmp_path):
    """Runs `rag ARGS...` in tmp (so document ids are relative to it) and returns the result."""

    def run(*args: str, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(bin_dir / "rag"), *args],
            cwd=tmp_path,
            env=cli_env(RAG_LOCAL_LLM_GGUF=str(smollm2), **env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


def documents(rag, **env) -> list[dict]:
    listed = rag("docs", "--json", **env)
    assert listed.returncode == 0, listed.stderr
    return json.loads(listed.stdout)


def test_ingest_docs_ask_delete(rag, seed_dir, tmp_path):
    ingested = rag("ingest", str(seed_dir))
    assert ingested.returncode == 0, ingested.stderr
    assert "added 1, updated 0, unchanged 0, removed 0, failed 0" in ingested.stdout

    listed = rag("docs")
    assert listed.returncode == 0, listed.stderr
    (line,) = listed.stdout.strip().splitlines()
    doc_id, chunks, published, title = line.split("\t")
    assert doc_id == "docs/000_cff91d0424af9357.txt"  # relative to the working dir
    assert published == "2025-05-23"
    assert int(chunks.removesuffix(" chunks")) > 3
    assert title.startswith("US President Donald Trump")

    asked = rag("ask", "--json", *QUESTIONS)
    assert asked.returncode == 0, asked.stderr
    lines = asked.stdout.strip().splitlines()
    assert len(lines) == 2
    for question, line in zip(QUESTIONS, lines, strict=True):
        result = json.loads(line)
        assert {"answer", "refused", "citations", "question_used", "timings"} <= set(result)
        assert result["question"] == question and result["error"] is None
        assert isinstance(result["refused"], bool) and result["question_used"]
        assert result["timings"]["total_ms"] > 0
        if result["refused"]:
            assert result["citations"] == []
        numbers = [c["n"] for c in result["citations"]]
        assert len(numbers) == len(set(numbers)) and all(1 <= n <= TOP_K for n in numbers)
        for citation in result["citations"]:
            assert citation["doc_id"] == doc_id
            assert f"[{citation['n']}]" in result["answer"]
            assert citation["chunk_start"] <= citation["start"] < citation["end"]
            assert citation["end"] <= citation["chunk_end"]
            offset = citation["chunk_start"]
            assert citation["text"][citation["start"] - offset : citation["end"] - offset].strip()

    deleted = rag("delete", doc_id)
    assert deleted.returncode == 0 and f"deleted {doc_id}" in deleted.stdout
    assert "No documents yet" in rag("docs").stdout
    # everything it wrote (index, keyword index) is under the data dir
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == ["data", "docs"]


def test_mistakes_exit_non_zero_with_a_clear_message(rag, seed_dir):
    missing = rag("ingest", "missing/path")
    assert missing.returncode != 0
    assert "no such file or folder" in missing.stderr and "missing/path" in missing.stderr
    assert "Traceback" not in missing.stderr

    nope = rag("delete", "nope")
    assert nope.returncode != 0
    assert "no document 'nope'" in nope.stderr and "Traceback" not in nope.stderr

    bad = seed_dir / "latin1.txt"
    bad.write_bytes("Café crème".encode("latin-1"))
    partly = rag("ingest", str(seed_dir))
    assert partly.returncode != 0  # one file failed; the other still went in
    assert "latin1.txt" in partly.stderr and "UTF-8" in partly.stderr
    assert "added 1," in partly.stdout and "failed 1" in partly.stdout
    assert "index: 1 documents" in partly.stdout


def test_chunk_size_mismatch_names_rag_reindex_and_reindex_fixes_it(rag, seed_dir):
    ingested = rag("ingest", str(seed_dir))
    assert ingested.returncode == 0, ingested.stderr
    chunks_before = int(re.search(r"index: 1 documents, (\d+) chunks", ingested.stdout)[1])

    mismatch = rag("ask", "--json", QUESTIONS[0], RAG_CHUNK_SIZE="100")
    assert mismatch.returncode != 0
    assert "rag reindex" in mismatch.stderr and "chunk_size" in mismatch.stderr
    assert "Traceback" not in mismatch.stderr and mismatch.stdout == ""

    reindexed = rag("reindex", RAG_CHUNK_SIZE="100")
    assert reindexed.returncode == 0, reindexed.stderr
    (after,) = documents(rag, RAG_CHUNK_SIZE="100")  # opens without a mismatch now
    assert f"reindexed 1 documents into {after['chunks']} chunks" in reindexed.stdout
    assert after["chunks"] < chunks_before
    assert after["published"] == "2025-05-23"
    assert after["doc_id"] == "docs/000_cff91d0424af9357.txt"
    # and now the default chunk size is the mismatch
    default = rag("docs")
    assert default.returncode != 0 and "rag reindex" in default.stderr

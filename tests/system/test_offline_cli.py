"""Issue #2's acceptance checks: the CLI with the shipped Qwen model and no network at all
(a fresh network namespace with only loopback up), on the seed article."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from rag.config import Settings
from rag.llm.local import local_gguf

pytestmark = pytest.mark.slow


def _unshare_works() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.fixture(scope="module")
def offline_ask(tmp_path_factory, bin_dir, free_port):
    if not _unshare_works():
        pytest.skip("unshare -n is not permitted here")
    data = tmp_path_factory.mktemp("offline")
    gguf = local_gguf(Settings())  # the verified model (assembled by `make model`)
    env_prefix = [
        "env",
        f"RAG_DATA_DIR={data}",
        f"RAG_LOCAL_LLM_GGUF={gguf}",
        f"RAG_LOCAL_LLM_PORT={free_port()}",
        "RAG_CONFIG=/nonexistent.toml",
    ]
    seeds = tmp_path_factory.mktemp("docs")
    shutil.copytree("seeds", seeds, dirs_exist_ok=True)
    subprocess.run([*env_prefix, str(bin_dir / "rag"), "ingest", str(seeds)], check=True)

    def ask(*questions: str) -> list[dict]:
        command = " ".join(
            [
                *env_prefix,
                str(bin_dir / "rag"),
                "ask",
                "--json",
                *(json.dumps(q) for q in questions),
            ]
        )
        done = subprocess.run(
            ["unshare", "-n", "sh", "-c", f"ip link set lo up && {command}"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]

    return ask


def test_names_medinsky_and_cites_the_passage_that_says_so(offline_ask):
    (turn,) = offline_ask("Who led Russia's delegation?")
    assert "Medinsky" in turn["answer"] and not turn["refused"]
    assert turn["citations"] and all("Medinsky" in c["text"] for c in turn["citations"])


def test_refuses_what_the_article_does_not_say(offline_ask):
    (turn,) = offline_ask("Who led Ukraine's delegation?")
    assert turn["refused"] and turn["citations"] == []


def test_follow_up_is_answered_from_the_article(offline_ask):
    first, second = offline_ask(
        "Who was Russia's lead negotiator?", "What did he say both sides agreed to?"
    )
    assert "Medinsky" in first["answer"]
    assert "Medinsky" in second["question_used"]
    assert not second["refused"]
    assert "ceasefire" in second["answer"].lower()
    assert any("ceasefire" in c["text"] for c in second["citations"])

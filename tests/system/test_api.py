"""The OpenAI-compatible API as a deployment runs it: one Chroma server (`chroma run`), one
model server (`rag llm-server` with SmolLM2 on the shared local-model port) and two `rag serve`
processes using both, each with its own data dir. Driven with the official `openai` client, with
`curl`, and with `gradio_client` (the page's `ask` API on the same port).

One set of processes serves the whole module. The first test runs while the knowledge base is
still empty; the `ingested` fixture then adds the seed article through `rag ingest` (the CLI,
not either server), and every later test asks about it."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import test_chroma_server

from rag import prompts
from rag_eval.process import Watched

KEY = "k-test-0123456789"
QUESTION = "Who was Russia's lead negotiator?"
STARTUP_TIMEOUT = 240.0  # a shared 2-core CPU: loading models may take a while
ANSWER_TIMEOUT = 300.0

chroma_url = test_chroma_server.chroma_url


class Process(Watched):
    """A `rag` process; a test fails, showing its output, when a line it waits for never comes."""

    def wait_for(self, pattern: str, timeout: float = STARTUP_TIMEOUT) -> re.Match[str]:
        match = super().wait_for(pattern, timeout)
        if match is None:
            pytest.fail(
                f"no {pattern!r} within {timeout:g} s (exit {self.popen.poll()}):\n{self.output()}"
            )
        return match


def rag_cli(deployment: dict, bin_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """`rag ARGS` as a third process of the deployment (its own data dir, the shared store),
    with more `RAG_*` settings in `env`."""
    return subprocess.run(
        [str(bin_dir / "rag"), *args],
        env={**deployment["env"]("cli"), **env},
        cwd=deployment["root"],
        capture_output=True,
        text=True,
        timeout=ANSWER_TIMEOUT,
    )


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, free_port, bin_dir, smollm2, chroma_url) -> Iterator[dict]:
    """A model server and two pages (with their /v1) over one Chroma server."""
    import os

    root = tmp_path_factory.mktemp("deployment")
    model_port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "OPENAI_"))}
    base.update(
        RAG_CONFIG=str(root / "no-such-rag.toml"),
        RAG_LOCAL_LLM_GGUF=str(smollm2),
        RAG_LOCAL_LLM_PORT=str(model_port),
        RAG_CHROMA_URL=chroma_url,
        RAG_COLLECTION="api-test",
        RAG_API_KEY=KEY,
        PYTHONUNBUFFERED="1",
    )

    def env(name: str) -> dict[str, str]:
        return {**base, "RAG_DATA_DIR": str(root / name)}

    processes: list[Process] = []
    try:
        model = Process([str(bin_dir / "rag"), "llm-server"], env("model"), root)
        processes.append(model)
        model.wait_for(r"serving .* at (http://\S+)")
        # both pages start at once (the model server is up, so neither starts its own)
        for name in ("a", "b"):
            command = [str(bin_dir / "rag"), "serve", "--port", str(free_port())]
            processes.append(Process(command, env(name), root))
        urls = [p.wait_for(r"ready at (http://\S+?)/?\s*$").group(1) for p in processes[1:]]
        yield {"a": urls[0], "b": urls[1], "env": env, "root": root, "processes": processes}
    finally:
        for process in reversed(processes):
            process.stop()


@pytest.fixture(scope="module")
def ingested(deployment, bin_dir) -> dict:
    """The seed article added through the CLI into the shared Chroma server."""
    seeds = deployment["root"] / "docs"
    seeds.mkdir(exist_ok=True)
    seed = Path(__file__).resolve().parents[2] / "seeds" / "000_cff91d0424af9357.txt"
    (seeds / seed.name).write_bytes(seed.read_bytes())
    done = rag_cli(deployment, bin_dir, "ingest", str(seeds))
    assert done.returncode == 0, done.stderr
    return deployment


def client(url: str, key: str = KEY):
    import openai

    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, timeout=ANSWER_TIMEOUT, max_retries=0)


def check_citations(content: str, citations: list[dict], refused: bool) -> None:
    """The answer's marks and the citations agree: each cites a passage of the seed article."""
    if refused:
        assert citations == []
        return
    assert citations, "an answer that is not a refusal cites its passages"
    for citation in citations:
        assert {
            "n",
            "doc_id",
            "title",
            "text",
            "start",
            "end",
            "page",
            "section",
            "support",
        } <= set(citation)
        assert f"[{citation['n']}]" in content
        assert citation["doc_id"].endswith("000_cff91d0424af9357.txt")
        assert citation["start"] < citation["end"]


def test_empty_knowledge_base_answers_how_to_add_documents(deployment, bin_dir):
    reply = client(deployment["a"]).chat.completions.create(
        model="rag", messages=[{"role": "user", "content": QUESTION}]
    )
    extra = reply.model_extra or {}
    assert extra["refused"] is True and extra["reason"] == "no_documents"
    assert extra["citations"] == []
    assert reply.choices[0].message.content == prompts.load("no_documents").strip()
    assert "rag ingest" in reply.choices[0].message.content
    # and the CLI says the same, from the same empty store
    asked = rag_cli(deployment, bin_dir, "ask", "--json", QUESTION)
    assert asked.returncode == 0, asked.stderr
    result = json.loads(asked.stdout)
    assert result["refused"] is True and result["reason"] == "no_documents"
    assert result["answer"] == reply.choices[0].message.content


def test_a_document_ingested_elsewhere_is_answered_by_both_servers(ingested):
    for url in (ingested["a"], ingested["b"]):
        (model,) = client(url).models.list().data
        assert model.id == "rag"
        assert (model.model_extra or {})["knowledge_base"]["documents"] == 1
        reply = client(url).chat.completions.create(
            model="rag", messages=[{"role": "user", "content": QUESTION}]
        )
        extra = reply.model_extra or {}
        assert extra["reason"] != "no_documents"  # the shared store's document was searched
        check_citations(reply.choices[0].message.content, extra["citations"], extra["refused"])


def test_plain_completion_keeps_its_citations_and_counts_tokens(ingested):
    reply = client(ingested["a"]).chat.completions.create(
        model="rag", messages=[{"role": "user", "content": QUESTION}]
    )
    assert reply.object == "chat.completion" and reply.model == "rag"
    assert reply.choices[0].finish_reason == "stop"
    content = reply.choices[0].message.content
    assert content and reply.choices[0].message.role == "assistant"
    extra = reply.model_extra or {}
    check_citations(content, extra["citations"], extra["refused"])
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    if extra["reason"] != "not_in_documents" or reply.usage.prompt_tokens:
        assert reply.usage.prompt_tokens > 0


def test_streamed_completion_ends_with_citations_and_usage(ingested):
    stream = client(ingested["b"]).chat.completions.create(
        model="rag", messages=[{"role": "user", "content": QUESTION}], stream=True
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    extra = last.model_extra or {}
    assert isinstance(extra["refused"], bool) and last.usage is not None
    check_citations(content, extra["citations"], extra["refused"])
    assert content.strip()


def test_follow_up_uses_the_earlier_turns(ingested):
    reply = client(ingested["a"]).chat.completions.create(
        model="rag",
        messages=[
            {"role": "system", "content": "ignored"},
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": "Vladimir Medinsky [1]."},
            {"role": "user", "content": "What did he say both sides agreed to?"},
        ],
    )
    extra = reply.model_extra or {}
    assert extra["question_used"]  # condensed with the history, or the question as asked
    check_citations(reply.choices[0].message.content, extra["citations"], extra["refused"])


def test_a_wrong_or_missing_key_is_refused(ingested):
    import openai

    for key in ("wrong-key", "none"):
        with pytest.raises(openai.AuthenticationError) as raised:
            client(ingested["a"], key).chat.completions.create(
                model="rag", messages=[{"role": "user", "content": QUESTION}]
            )
        assert raised.value.status_code == 401
        assert raised.value.body["code"] == "invalid_api_key"
        assert KEY not in str(raised.value)


def test_rag_ask_hands_its_question_to_the_running_serve(ingested, bin_dir):
    """`rag ask` on the machine of a `rag serve` that searches the same store with the same
    settings sends it the question and prints its answer in its own format."""
    from urllib.parse import urlparse

    port = str(urlparse(ingested["a"]).port)
    asked = rag_cli(ingested, bin_dir, "-v", "ask", "--json", QUESTION, RAG_PORT=port)
    assert asked.returncode == 0, asked.stderr
    assert f"answering through the rag serve at http://127.0.0.1:{port}" in asked.stderr
    assert "starting local model" not in asked.stderr  # nothing loaded here
    result = json.loads(asked.stdout)
    assert result["reason"] != "no_documents" and result["timings"]
    check_citations(result["answer"], result["citations"], result["refused"])

    # settings the server does not answer with: answered here, from the same store
    here = rag_cli(ingested, bin_dir, "-v", "ask", "--json", QUESTION, RAG_PORT=port, RAG_TOP_K="2")
    assert here.returncode == 0, here.stderr
    assert "has other settings: answering here" in here.stderr
    assert json.loads(here.stdout)["reason"] != "no_documents"


def test_rag_chat_talks_to_the_running_serve(ingested, bin_dir):
    from urllib.parse import urlparse

    port = str(urlparse(ingested["b"]).port)
    chat = subprocess.run(
        [str(bin_dir / "rag"), "-v", "chat"],
        input=f"{QUESTION}\n\n",
        env={**ingested["env"]("cli"), "RAG_PORT": port},
        cwd=ingested["root"],
        capture_output=True,
        text=True,
        timeout=ANSWER_TIMEOUT,
    )
    assert chat.returncode == 0, chat.stderr
    assert f"answering through the rag serve at http://127.0.0.1:{port}" in chat.stderr
    answer = chat.stdout.split("> ", 1)[1]  # after the first prompt
    assert "[1]" in answer or prompts.refusal_text() in answer


def curl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["curl", "-sS", "--max-time", str(int(ANSWER_TIMEOUT)), *args],
        capture_output=True,
        text=True,
        timeout=ANSWER_TIMEOUT + 10,
    )


def test_curl_plain_streamed_and_unauthorized(ingested):
    url = f"{ingested['b']}/v1/chat/completions"
    body = json.dumps({"model": "rag", "messages": [{"role": "user", "content": QUESTION}]})
    auth = ("-H", f"Authorization: Bearer {KEY}", "-H", "Content-Type: application/json")

    plain = curl(*auth, "-d", body, url)
    assert plain.returncode == 0, plain.stderr
    completion = json.loads(plain.stdout)
    content = completion["choices"][0]["message"]["content"]
    check_citations(content, completion["citations"], completion["refused"])

    streamed = curl("-N", *auth, "-d", json.dumps({**json.loads(body), "stream": True}), url)
    events = [line[6:] for line in streamed.stdout.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and "usage" in chunks[-1]

    denied = curl("-w", "\n%{http_code}", "-d", body, url)
    reply, status = denied.stdout.rsplit("\n", 1)
    assert status == "401" and json.loads(reply)["error"]["type"] == "authentication_error"


def test_the_page_and_its_ask_api_still_serve_on_the_same_port(ingested):
    from gradio_client import Client

    result = Client(ingested["a"], verbose=False).predict(QUESTION, [], api_name="/ask")
    assert {"answer", "refused", "citations", "timings"} <= set(result)
    assert curl(ingested["a"] + "/").stdout.lstrip().lower().startswith("<!doctype html")

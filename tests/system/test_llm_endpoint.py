"""The LLM seam for real: SmolLM2 served by xllamacpp behind the OpenAI-compatible API, endpoints
that are down or failing, and the shipped model's integrity check."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rag import prompts
from rag.answer import Engine
from rag.compose import build_engine
from rag.config import Settings
from rag.events import Final, Searching, Sources, Token
from rag.knowledge_base import KnowledgeBase
from rag.llm import Endpoint, LLMError, OpenAICompatibleLLM
from rag.llm.local import (
    LocalLLM,
    LocalModelServer,
    prefix_cache_dir,
    probe,
    start_local_server,
)
from rag.models import QWEN_GGUF_NAME, QWEN_GGUF_SHA256, ModelError, qwen_gguf_path

QUESTION = "Who was Russia's lead negotiator?"
SEED = Path(__file__).resolve().parents[2] / "seeds" / "000_cff91d0424af9357.txt"


@pytest.fixture(scope="module")
def llm_server(smollm2, tmp_path_factory):
    settings = Settings(
        local_llm_gguf=smollm2, data_dir=tmp_path_factory.mktemp("llm"), _env_file=None
    )
    return start_local_server(settings, port=0)


@pytest.fixture(scope="module")
def kb(embedder, tmp_path_factory) -> KnowledgeBase:
    folder = tmp_path_factory.mktemp("seed")
    (folder / SEED.name).write_bytes(SEED.read_bytes())
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"), _env_file=None)
    knowledge_base = KnowledgeBase(settings, embedder)
    assert knowledge_base.ingest([folder]).errors == []
    return knowledge_base


def engine_with(kb: KnowledgeBase, **settings) -> Engine:
    """An engine as the CLI builds one: the model named by the settings, connected on first use."""
    return build_engine(kb.settings.model_copy(update=settings), kb=kb)


def run(engine: Engine, question: str = QUESTION):
    events = list(engine.answer(question))
    assert isinstance(events[-1], Final) and sum(isinstance(e, Final) for e in events) == 1
    return events, events[-1].result


def check_events(events, kb: KnowledgeBase):
    """The stream's contract: order, passages, and citations that name shown passages."""
    result = events[-1].result
    kinds = [type(e) for e in events]
    assert kinds[:2] == [Searching, Sources] and kinds[-1] is Final
    assert set(kinds[2:-1]) <= {Token}  # nothing else in between
    # an answer is streamed; a refusal decided before its first sentence shows streams nothing
    assert Token in kinds or result.refused
    assert result.error is None

    passages = events[1].passages
    assert passages and "Medinsky" in passages[0].text
    for passage in passages:
        assert kb.document_text(passage.doc_id)[passage.start : passage.end] == passage.text
    shown = {p.n: p for p in passages}
    assert {int(n) for n in re.findall(r"\[(\d+)\]", result.answer)} <= set(shown)
    if result.refused:
        assert result.citations == []
        assert result.answer == prompts.refusal_text()
    else:
        assert result.answer.strip()
    for citation in result.citations:
        passage = shown[citation.n]  # names a passage that was shown
        assert (citation.doc_id, citation.text) == (passage.doc_id, passage.text)
        assert (citation.chunk_start, citation.chunk_end) == (passage.start, passage.end)
        assert passage.start <= citation.start < citation.end <= passage.end
        assert citation.span.strip() and citation.span in passage.text
        assert kb.document_text(citation.doc_id)[citation.start : citation.end] == citation.span
    return result


def test_answer_streams_events_in_order_with_valid_citations(llm_server, kb):
    engine = engine_with(
        kb,
        llm_base_url=llm_server.base_url,
        llm_model=llm_server.model_name,
        llm_timeout=180,
        llm_max_retries=0,
    )
    events, _ = run(engine)
    check_events(events, kb)  # SmolLM2 mostly refuses: then there must be no citations


@pytest.mark.slow
def test_shipped_model_answers_with_a_cited_passage(kb):
    models_dir = Settings().models_dir
    if not Path(f"{models_dir / QWEN_GGUF_NAME}.sha256").is_file():
        pytest.skip("the shipped model is not assembled (run `make model`)")
    gguf = qwen_gguf_path(models_dir)
    server = start_local_server(kb.settings.model_copy(update={"local_llm_gguf": gguf}), port=0)
    engine = engine_with(
        kb, llm_base_url=server.base_url, llm_model=server.model_name, llm_timeout=300
    )
    events, _ = run(engine)
    result = check_events(events, kb)
    assert not result.refused and "Medinsky" in result.answer
    assert result.citations and any("Medinsky" in c.span for c in result.citations)


def test_a_prompt_prefix_is_saved_once_and_restored_by_the_next_server(smollm2, tmp_path):
    import httpx

    settings = Settings(local_llm_gguf=smollm2, data_dir=tmp_path, _env_file=None)
    prefix = [
        {"role": "system", "content": "Answer in one short sentence. " * 30},
        {"role": "user", "content": "Say hello."},
    ]
    cache = prefix_cache_dir(settings)

    servers = []  # a server stops when it is garbage-collected

    def fresh_server() -> LocalLLM:
        servers.append(LocalModelServer(smollm2, 0, threads=1, n_ctx=2048, cache_dir=cache))
        endpoint = Endpoint(
            servers[-1].base_url, "smollm2", None, settings.llm_timeout, settings.llm_max_retries
        )
        return LocalLLM(endpoint, smollm2, settings)

    fresh_server().prime(prefix)  # computed, then saved
    saved = list(cache.glob("prefix-*.bin"))
    assert len(saved) == 1 and saved[0].stat().st_size > 100_000
    written = saved[0].stat().st_mtime_ns

    restarted = fresh_server()
    restarted.prime(prefix)  # restored from the file, not recomputed and saved again
    assert list(cache.glob("prefix-*.bin")) == saved and saved[0].stat().st_mtime_ns == written
    reply = httpx.post(
        f"{restarted.base_url}/chat/completions",
        json={"messages": prefix, "max_tokens": 1},
        timeout=60,
    ).json()
    usage = reply["usage"]
    assert usage["prompt_tokens"] > 150
    assert usage["prompt_tokens_details"]["cached_tokens"] >= usage["prompt_tokens"] - 1


def test_an_endpoint_is_primed_by_asking_it_for_one_token(llm_server, failing_server):
    from rag.answer import cache_prompt_prefixes

    llm = OpenAICompatibleLLM(Endpoint(llm_server.base_url, llm_server.model_name, timeout=180))
    cache_prompt_prefixes(llm)  # the answer and condense prefixes, as `rag setup` does
    url, requests = failing_server
    failing = OpenAICompatibleLLM(Endpoint(url, "model", None, timeout=5, max_retries=0))
    with pytest.raises(LLMError, match="HTTP 500"):  # a real request, not a no-op
        failing.prime([{"role": "user", "content": "Hi"}])
    assert requests == ["/v1/chat/completions"]


def test_probe_tells_a_running_server_from_a_closed_port(llm_server, free_port):
    assert probe(llm_server.base_url)
    assert not probe(f"http://127.0.0.1:{free_port()}/v1")


def test_endpoint_that_is_down_gives_a_final_error_naming_it(kb, free_port):
    url = f"http://127.0.0.1:{free_port()}/v1"
    llm = OpenAICompatibleLLM(Endpoint(url, "model", None, timeout=2, max_retries=0))
    events, result = run(Engine(kb.settings, kb, llm))
    assert result.error and url in result.error
    assert "reach" in result.error.lower()
    assert not any(isinstance(e, Token) for e in events)
    assert result.citations == [] and result.answer == ""


@pytest.fixture
def failing_server() -> Iterator[tuple[str, list[str]]]:
    """An OpenAI-lookalike that answers every request with HTTP 500."""
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            requests.append(self.path)
            body = json.dumps({"error": {"message": "model exploded", "type": "server_error"}})
            self.send_response(500)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_endpoint_answering_http_500_gives_a_clear_error(kb, failing_server):
    url, requests = failing_server
    llm = OpenAICompatibleLLM(Endpoint(url, "model", None, timeout=5, max_retries=0))
    events, result = run(Engine(kb.settings, kb, llm))
    assert result.error and url in result.error and "HTTP 500" in result.error
    assert "model exploded" in result.error
    assert requests == ["/v1/chat/completions"]  # max_retries=0: asked exactly once
    assert not any(isinstance(e, Token) for e in events)
    assert result.citations == []
    assert not probe(url)  # not an OpenAI-compatible server


# ------------------------------------------------------------------ model integrity


def test_a_wrong_file_under_the_model_name_is_refused(tmp_path):
    target = tmp_path / QWEN_GGUF_NAME
    target.write_bytes(b"GGUF" + b"\x00" * 4096)
    for _ in range(2):  # and it stays refused: nothing marks it as verified
        with pytest.raises(ModelError) as error:
            qwen_gguf_path(tmp_path)
        message = str(error.value)
        assert "sha256" in message and QWEN_GGUF_SHA256 in message
        assert str(target) in message and "refuses" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == [QWEN_GGUF_NAME]


def test_a_model_changed_after_verification_is_checked_again(tmp_path):
    target = tmp_path / QWEN_GGUF_NAME
    target.write_bytes(b"verified once")
    stat = target.stat()
    marker = target.with_suffix(target.suffix + ".sha256")
    marker.write_text(f"{QWEN_GGUF_SHA256} {stat.st_size} {stat.st_mtime_ns}\n")
    assert qwen_gguf_path(tmp_path) == target  # the marker spares re-hashing an unchanged file

    target.write_bytes(b"tampered with afterwards")
    with pytest.raises(ModelError, match="sha256"):
        qwen_gguf_path(tmp_path)


def test_the_real_verified_model_is_accepted():
    models_dir = Settings().models_dir
    target = models_dir / QWEN_GGUF_NAME
    if not (target.is_file() and Path(f"{target}.sha256").is_file()):
        pytest.skip(f"no assembled, verified model at {target} (run `make model`)")
    assert qwen_gguf_path(models_dir) == target

"""The LLM seam (rag.llm) without a model: the `LLM` contract, the OpenAI-compatible client's
streaming, priming and error messages, and how rag.compose picks the model from settings."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import httpx
import openai
import pytest
from fakes import FakeLLM

from rag.compose import build_llm, judge_endpoint, llm_endpoint
from rag.llm import LLM, Endpoint, LLMError, OpenAICompatibleLLM

URL = "http://127.0.0.1:9/v1"


def chunk(text: str | None) -> SimpleNamespace:
    return SimpleNamespace(choices=[SimpleNamespace(delta=SimpleNamespace(content=text))])


class FakeCompletions:
    """`client.chat.completions`: records each request, streams the scripted pieces or raises."""

    def __init__(self, *replies: list[str | None] | Exception) -> None:
        self.replies = list(replies)
        self.requests: list[dict] = []

    def create(self, **request) -> Iterator[SimpleNamespace]:
        self.requests.append(request)
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        pieces = [chunk(piece) for piece in reply] + [SimpleNamespace(choices=[])]
        return (piece for piece in pieces)  # closable, like the client's Stream


def llm_with(completions: FakeCompletions) -> OpenAICompatibleLLM:
    llm = OpenAICompatibleLLM(Endpoint(URL, "some-model", "sk-test", timeout=5, max_retries=0))
    llm._client = SimpleNamespace(chat=SimpleNamespace(completions=completions))
    return llm


def test_an_llm_must_stream_and_needs_no_prompt_cache():
    class NoStream(LLM):
        pass

    with pytest.raises(TypeError):
        NoStream()  # type: ignore[abstract]
    llm = FakeLLM()
    assert isinstance(llm, LLM)
    assert llm.prime([{"role": "user", "content": "x"}]) is None and llm.calls == []


def test_streamed_pieces_at_temperature_zero():
    completions = FakeCompletions(["Medinsky", None, " led it", ""])
    llm = llm_with(completions)
    messages = [{"role": "user", "content": "Who led it?"}]
    assert list(llm.stream(messages, max_tokens=32)) == ["Medinsky", " led it"]
    (request,) = completions.requests
    assert request == {
        "model": "some-model",
        "messages": messages,
        "temperature": 0.0,
        "max_tokens": 32,
        "stream": True,
    }
    assert llm.description == f"some-model at {URL}" and llm.base_url == URL


def test_priming_an_endpoint_asks_for_one_token():
    completions = FakeCompletions(["Hi"])
    prefix = [{"role": "system", "content": "fixed"}, {"role": "user", "content": "x"}]
    llm_with(completions).prime(prefix)
    assert [(r["messages"], r["max_tokens"]) for r in completions.requests] == [(prefix, 1)]


def test_endpoint_failures_are_llm_errors_naming_the_endpoint():
    request = httpx.Request("POST", f"{URL}/chat/completions")
    response = httpx.Response(500, request=request)
    failures = FakeCompletions(
        openai.APIConnectionError(request=request),
        openai.APITimeoutError(request=request),
        openai.InternalServerError("model exploded", response=response, body=None),
    )
    llm = llm_with(failures)
    messages = [{"role": "user", "content": "?"}]
    with pytest.raises(LLMError, match=rf"Cannot reach the LLM at {URL}: is it running\?"):
        list(llm.stream(messages, 8))
    with pytest.raises(LLMError, match=rf"The model endpoint {URL} is not answering"):
        list(llm.stream(messages, 8))
    with pytest.raises(LLMError, match=rf"The LLM at {URL} answered HTTP 500: model exploded"):
        list(llm.stream(messages, 8))


def test_the_official_client_gets_the_endpoints_address_key_and_limits():
    from rag.llm.openai_compatible import openai_client

    endpoint = Endpoint(URL, "m", "sk-test", 7, 2, connect_timeout=3, first_token_timeout=9)
    client = openai_client(endpoint)
    assert str(client.base_url).rstrip("/") == URL
    assert client.api_key == "sk-test"
    # separate limits to connect and to the first byte; retries are rag's, never the client's
    assert (client.timeout.connect, client.timeout.read, client.max_retries) == (3, 9, 0)
    assert openai_client(Endpoint(URL, "m")).api_key == "none"  # no key configured


def test_a_configured_endpoint_is_used_and_no_local_model_started(tmp_path):
    from rag.config import Settings

    def settings_with(**values) -> Settings:
        return Settings(data_dir=tmp_path, _env_file=None, **values)

    configured = dict(
        llm_base_url=URL, llm_model="gpt-x", llm_api_key="sk-abc", llm_timeout=12, llm_max_retries=3
    )
    settings = settings_with(**configured)
    assert llm_endpoint(settings) == Endpoint(URL, "gpt-x", "sk-abc", 12, 3, 5.0, 30.0)
    llm = build_llm(settings)
    assert type(llm) is OpenAICompatibleLLM and llm.endpoint == llm_endpoint(settings)
    assert llm_endpoint(settings_with()) is None  # none configured: the shipped local model
    assert judge_endpoint(settings) is None  # the judge is the answering model by default
    judged = settings_with(**configured, judge_base_url="http://judge/v1", judge_api_key="j-k")
    assert judge_endpoint(judged) == Endpoint("http://judge/v1", "gpt-x", "j-k", 12, 3, 5.0, 30.0)


def test_only_a_request_that_never_connected_is_retried():
    request = httpx.Request("POST", f"{URL}/chat/completions")
    flaky = FakeCompletions(openai.APIConnectionError(request=request), ["Medinsky"])
    llm = OpenAICompatibleLLM(Endpoint(URL, "m", max_retries=1))
    llm._client = SimpleNamespace(chat=SimpleNamespace(completions=flaky))
    assert list(llm.stream([{"role": "user", "content": "?"}], 8)) == ["Medinsky"]
    hung = FakeCompletions(openai.APITimeoutError(request=request), ["never asked"])
    llm._client = SimpleNamespace(chat=SimpleNamespace(completions=hung))
    with pytest.raises(LLMError, match="not answering"):
        list(llm.stream([{"role": "user", "content": "?"}], 8))
    assert len(hung.requests) == 1  # a timed-out request is not sent again


def test_stopping_a_stream_closes_the_request():
    closed = []

    def pieces():
        try:
            yield chunk("Medinsky")
            yield chunk(" led it")
        finally:
            closed.append(True)

    completions = SimpleNamespace(create=lambda **request: pieces())
    llm = OpenAICompatibleLLM(Endpoint(URL, "m"))
    llm._client = SimpleNamespace(chat=SimpleNamespace(completions=completions))
    stream = llm.stream([{"role": "user", "content": "?"}], 8)
    assert next(stream) == "Medinsky"
    stream.close()
    assert closed == [True]


def test_model_threads_leave_busy_cores_to_other_work(monkeypatch):
    from rag.llm import local

    monkeypatch.setattr(local.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    samples = iter([3, 2, 3, 3, 3])  # this process and one other task running (once two)
    monkeypatch.setattr(local, "_runnable_tasks", lambda: next(samples))
    assert local.model_threads() == 1
    monkeypatch.setattr(local, "_runnable_tasks", lambda: 1)  # only this process
    assert local.model_threads() == 2
    monkeypatch.setattr(local, "_runnable_tasks", lambda: 9)  # overloaded: still one thread
    assert local.model_threads() == 1
    monkeypatch.setattr(local, "_runnable_tasks", lambda: None)  # no /proc: all cores
    assert local.model_threads() == 2


def test_priming_another_process_s_model_server_leaves_its_slots_alone(tmp_path):
    from rag.config import Settings
    from rag.llm.local import local_llm

    settings = Settings(data_dir=tmp_path, local_llm_gguf=tmp_path / "m.gguf", _env_file=None)
    # nothing listens on port 9: a request would fail; a shared server is not primed at all
    shared = local_llm(settings, "http://127.0.0.1:9/v1", shared=True)
    shared.prime([{"role": "system", "content": "fixed prefix"}])
    own = local_llm(settings, "http://127.0.0.1:9/v1")
    with pytest.raises(LLMError):
        own.prime([{"role": "system", "content": "fixed prefix"}])

"""The LLM seam (rag.llm) without a model: the `LLM` contract, the OpenAI-compatible client's
streaming, priming and error messages against a scripted endpoint on 127.0.0.1, and how
rag.compose picks the model from settings."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fakes import FakeLLM

from rag.compose import build_llm, judge_endpoint, llm_endpoint
from rag.llm import LLM, Endpoint, LLMError, OpenAICompatibleLLM

CLOSED = "http://127.0.0.1:9/v1"  # nothing listens on port 9


def sse(*events: dict | str) -> bytes:
    return b"".join(
        f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n".encode() for e in events
    )


def delta(text: str | None) -> dict:
    return {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}


class ScriptedEndpoint:
    """An OpenAI-compatible chat endpoint on 127.0.0.1 that answers each request with the next
    scripted reply and records what it was sent. A reply is the bytes of an event stream, a
    (status, JSON body) pair, "drop" (close the connection unanswered), "hang" (answer nothing
    until the test ends), or ("then wait", bytes): send the bytes, then wait for the client to
    close the connection (noted in `closed_early`)."""

    def __init__(self, *replies) -> None:
        self.replies = list(replies)
        self.requests: list[dict] = []
        self.headers: list[dict[str, str]] = []
        self.closed_early = threading.Event()
        self.release = threading.Event()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                endpoint.requests.append(json.loads(self.rfile.read(length)))
                endpoint.headers.append(dict(self.headers))
                endpoint.reply(self, endpoint.replies.pop(0))

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def reply(self, handler: BaseHTTPRequestHandler, reply) -> None:
        if reply == "drop":
            handler.close_connection = True
            return
        if reply == "hang":
            self.release.wait(timeout=60)
            return
        if isinstance(reply, tuple) and isinstance(reply[0], int):
            status, body = reply
            data = json.dumps(body).encode()
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
            return
        then_wait = isinstance(reply, tuple)
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.end_headers()
        handler.wfile.write(reply[1] if then_wait else reply)
        handler.wfile.flush()
        if then_wait and handler.rfile.read(1) == b"":  # the client hung up
            self.closed_early.set()
        handler.close_connection = True

    def __enter__(self) -> ScriptedEndpoint:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def llm_at(url: str, **limits) -> OpenAICompatibleLLM:
    return OpenAICompatibleLLM(Endpoint(url, "some-model", "sk-test", **limits))


def test_an_llm_must_stream_and_needs_no_prompt_cache():
    class NoStream(LLM):
        pass

    with pytest.raises(TypeError):
        NoStream()  # type: ignore[abstract]
    llm = FakeLLM()
    assert isinstance(llm, LLM)
    assert llm.prime([{"role": "user", "content": "x"}]) is None and llm.calls == []


def test_streamed_pieces_at_temperature_zero_with_the_key():
    stream = sse(
        {"choices": [{"index": 0, "delta": {"role": "assistant"}}]},
        delta("Medinsky"),
        delta(None),
        delta(" led it"),
        {"choices": []},  # a usage-only chunk
        "[DONE]",
    )
    with ScriptedEndpoint(stream) as endpoint:
        llm = llm_at(endpoint.url)
        messages = [{"role": "user", "content": "Who led it?"}]
        assert list(llm.stream(messages, max_tokens=32)) == ["Medinsky", " led it"]
    assert endpoint.requests == [
        {
            "model": "some-model",
            "messages": messages,
            "temperature": 0.0,
            "max_tokens": 32,
            "stream": True,
        }
    ]
    assert endpoint.headers[0]["Authorization"] == "Bearer sk-test"
    assert llm.description == f"some-model at {endpoint.url}" and llm.base_url == endpoint.url


def test_no_key_sends_no_authorization():
    with ScriptedEndpoint(sse(delta("Hi"), "[DONE]")) as endpoint:
        llm = OpenAICompatibleLLM(Endpoint(endpoint.url, "m"))
        assert list(llm.stream([{"role": "user", "content": "?"}], 8)) == ["Hi"]
    assert "Authorization" not in endpoint.headers[0]


def test_priming_an_endpoint_asks_for_one_token():
    prefix = [{"role": "system", "content": "fixed"}, {"role": "user", "content": "x"}]
    with ScriptedEndpoint(sse(delta("Hi"), "[DONE]")) as endpoint:
        llm_at(endpoint.url).prime(prefix)
    assert [(r["messages"], r["max_tokens"]) for r in endpoint.requests] == [(prefix, 1)]


def test_endpoint_failures_are_llm_errors_naming_the_endpoint():
    messages = [{"role": "user", "content": "?"}]
    with pytest.raises(LLMError, match=rf"Cannot reach the LLM at {CLOSED}: is it running\?"):
        list(llm_at(CLOSED, max_retries=0).stream(messages, 8))
    failures = (
        "hang",
        (500, {"error": {"message": "model exploded", "type": "server_error"}}),
        (404, {"detail": "no such route"}),
        sse(delta("Medinsky"), {"error": {"message": "out of memory"}}),
        sse(delta("Medinsky"), "not json"),
    )
    with ScriptedEndpoint(*failures) as endpoint:
        llm = llm_at(endpoint.url, first_token_timeout=0.5)
        url = endpoint.url
        with pytest.raises(LLMError, match=rf"The model endpoint {url} is not answering"):
            list(llm.stream(messages, 8))
        with pytest.raises(LLMError, match=rf"The LLM at {url} answered HTTP 500: model exploded"):
            list(llm.stream(messages, 8))
        with pytest.raises(LLMError, match=r"answered HTTP 404: \{'detail': 'no such route'\}"):
            list(llm.stream(messages, 8))
        with pytest.raises(LLMError, match=rf"LLM at {url} failed mid-answer \(out of memory\)"):
            list(llm.stream(messages, 8))
        with pytest.raises(LLMError, match=r"failed mid-answer \(unreadable event 'not json'\)"):
            list(llm.stream(messages, 8))


def test_a_configured_endpoint_is_used_and_no_local_model_started(tmp_path):
    from rag.config import Settings

    def settings_with(**values) -> Settings:
        return Settings(data_dir=tmp_path, _env_file=None, **values)

    configured = dict(
        llm_base_url=CLOSED,
        llm_model="gpt-x",
        llm_api_key="sk-abc",
        llm_timeout=12,
        llm_max_retries=3,
    )
    settings = settings_with(**configured)
    assert llm_endpoint(settings) == Endpoint(CLOSED, "gpt-x", "sk-abc", 12, 3, 5.0, 30.0)
    llm = build_llm(settings)
    assert type(llm) is OpenAICompatibleLLM and llm.endpoint == llm_endpoint(settings)
    assert llm_endpoint(settings_with()) is None  # none configured: the shipped local model
    assert judge_endpoint(settings) is None  # the judge is the answering model by default
    judged = settings_with(**configured, judge_base_url="http://judge/v1", judge_api_key="j-k")
    assert judge_endpoint(judged) == Endpoint("http://judge/v1", "gpt-x", "j-k", 12, 3, 5.0, 30.0)


def test_only_a_request_that_never_connected_is_retried():
    messages = [{"role": "user", "content": "?"}]
    with ScriptedEndpoint("drop", sse(delta("Medinsky"), "[DONE]")) as endpoint:
        assert list(llm_at(endpoint.url, max_retries=1).stream(messages, 8)) == ["Medinsky"]
        assert len(endpoint.requests) == 2
    with ScriptedEndpoint("hang", sse(delta("never asked"))) as endpoint:
        hung = llm_at(endpoint.url, max_retries=1, first_token_timeout=0.5)
        with pytest.raises(LLMError, match="not answering"):
            list(hung.stream(messages, 8))
        assert len(endpoint.requests) == 1  # a timed-out request is not sent again


def test_stopping_a_stream_closes_the_request():
    with ScriptedEndpoint(("then wait", sse(delta("Medinsky")))) as endpoint:
        stream = llm_at(endpoint.url).stream([{"role": "user", "content": "?"}], 8)
        assert next(stream) == "Medinsky"
        stream.close()
        assert endpoint.closed_early.wait(timeout=10)


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

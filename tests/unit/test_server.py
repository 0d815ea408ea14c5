"""The OpenAI-compatible API without a network: the request → question/history mapping, the
responses built from a result, access rules, and the routes over the real engine with a scripted
LLM (FastAPI's TestClient)."""

from __future__ import annotations

import json

import pytest
import test_answer
from fakes import FailingLLM, FakeEmbedding, FakeLLM

from rag.answer import Engine
from rag.events import AnswerResult, Citation, SentenceVerdict, Turn
from rag.knowledge_base import KnowledgeBase
from rag.security import api_refusal
from rag.server import protocol
from rag.server.protocol import BadRequest, parse_chat_request

QUESTION = "Who was Russia's lead negotiator?"
ANSWER = "Russia's delegation was led by Vladimir Medinsky [1]."


def user(text):
    return {"role": "user", "content": text}


def assistant(text):
    return {"role": "assistant", "content": text}


# ---------------------------------------------------------------- request → turns


def test_last_user_message_is_the_question_and_earlier_pairs_the_history():
    request = parse_chat_request(
        {
            "model": "rag",
            "messages": [
                {"role": "system", "content": "You are a pirate."},  # ignored: rag's prompt
                user("Who led Russia's delegation?"),
                assistant("Vladimir Medinsky [1]."),
                user("unanswered, then asked again"),
                user("What did he say?"),
                assistant("Both sides agreed [1]."),
                user([{"type": "text", "text": "And"}, {"type": "text", "text": "when?"}]),
            ],
        }
    )
    assert request.question == "And\nwhen?"
    assert request.history == [
        Turn("Who led Russia's delegation?", "Vladimir Medinsky [1]."),
        Turn("What did he say?", "Both sides agreed [1]."),
    ]
    assert not request.stream and not request.draft


def test_stream_and_draft_flags():
    request = parse_chat_request({"messages": [user("q")], "stream": True, "draft": True})
    assert request.stream and request.draft and request.history == []


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ([], "JSON object"),
        ({}, "'messages'"),
        ({"messages": "hi"}, "'messages'"),
        ({"messages": [user("q"), assistant("a")]}, "last message must be the user's"),
        ({"messages": [{"role": "system", "content": "x"}]}, "last message must be the user's"),
        ({"messages": [user("   ")]}, "empty"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "'wizard' is not supported"),
        ({"messages": [{"content": "x"}]}, "role must be a string"),
        ({"messages": [user(42)]}, "content must be a string"),
        ({"messages": [user([{"type": "image_url"}])]}, "only text"),
        ({"messages": [user("q")], "stream": "yes"}, "'stream' must be true or false"),
        ({"messages": [user("q")], "model": 3}, "'model' must be a string"),
        ({"messages": [user("q")], "n": 2}, "'n' must be 1"),
    ],
)
def test_bad_requests_say_what_is_wrong(body, says):
    with pytest.raises(BadRequest) as raised:
        parse_chat_request(body)
    assert says in str(raised.value)


# ---------------------------------------------------------------- responses


def result(**overrides) -> AnswerResult:
    text = "The bridge opened in 1932."
    fields = {
        "answer": "It opened in 1932 [1].",
        "refused": False,
        "citations": [Citation(1, "bridge", "Bridge", text, 10, 26, None, 10, 36, 2, "History")],
        "question": "When?",
        "question_used": "When did the bridge open?",
        "tokens": {"prompt": 700, "passages": 90, "completion": 9},
    }
    fields.update(overrides)
    return AnswerResult(**fields)


def test_completion_carries_the_answer_its_citations_and_usage():
    verdict = SentenceVerdict("It opened in 1932.", [1], 0.83, True)
    body = protocol.completion(
        result(sentences=[verdict], answerability=0.83), "chatcmpl-1", created=5
    )
    assert body["object"] == "chat.completion" and body["model"] == "rag"
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "It opened in 1932 [1].",
    }
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 700, "completion_tokens": 9, "total_tokens": 709}
    assert body["refused"] is False and body["question_used"] == "When did the bridge open?"
    assert body["sentences"] == [
        {"text": "It opened in 1932.", "citations": [1], "support": 0.83, "kept": True}
    ]
    assert body["answerability"] == 0.83
    (citation,) = body["citations"]
    assert citation == {
        "n": 1,
        "doc_id": "bridge",
        "title": "Bridge",
        "text": "The bridge opened in 1932.",
        "start": 10,
        "end": 26,
        "page": 2,
        "section": "History",
        "support": None,
        "chunk_start": 10,
        "chunk_end": 36,
        "published": None,
    }


def test_refusal_is_an_ordinary_answer_without_citations():
    refused = result(answer="The documents do not say.", refused=True, citations=[], tokens={})
    refused.reason = "not_in_documents"
    body = protocol.completion(refused, "chatcmpl-2")
    assert body["choices"][0]["message"]["content"] == "The documents do not say."
    assert body["citations"] == [] and body["refused"] is True
    assert body["reason"] == "not_in_documents"
    assert body["usage"]["total_tokens"] == 0  # no model was asked


def test_final_chunks_send_the_checked_answer_then_the_closing_chunk():
    content, last = protocol.final_chunks(result(), "chatcmpl-3", 5)
    assert content["object"] == last["object"] == "chat.completion.chunk"
    assert content["choices"][0]["delta"] == {"content": "It opened in 1932 [1]."}
    assert last["choices"][0]["delta"] == {} and last["choices"][0]["finish_reason"] == "stop"
    assert [c["n"] for c in last["citations"]] == [1] and last["refused"] is False
    assert last["usage"]["total_tokens"] == 709


# ---------------------------------------------------------------- access


@pytest.mark.parametrize(
    ("update", "header", "status"),
    [
        ({}, None, None),  # local, no key: open
        ({"api_key": "k-123456"}, "Bearer k-123456", None),
        ({"api_key": "k-123456"}, "bearer k-123456", None),
        ({"api_key": "k-123456"}, None, 401),
        ({"api_key": "k-123456"}, "Bearer wrong", 401),
        ({"api_key": "k-123456"}, "k-123456", 401),
        ({"auth": "ada:secret-pw"}, None, 403),  # the page has a password, the API no key
        ({"auth": "ada:secret-pw"}, "Bearer anything", 403),
        ({"host": "0.0.0.0"}, None, 403),
        (
            {"host": "0.0.0.0", "auth": "ada:secret-pw", "api_key": "k-123456"},
            "Bearer k-123456",
            None,
        ),
    ],
)
def test_who_may_call_the_api(settings, update, header, status):
    from pydantic import SecretStr

    update = {k: SecretStr(v) if k in ("api_key", "auth") else v for k, v in update.items()}
    refusal = api_refusal(settings.model_copy(update=update), header)
    assert (refusal[0] if refusal else None) == status
    if refusal:
        assert "k-123456" not in refusal[1] and "secret-pw" not in refusal[1]


# ---------------------------------------------------------------- routes over the real engine


kb = test_answer.kb  # the seed document over real Chroma, bag-of-words embeddings


def client_for(engine, settings):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from rag.server import api_routes

    return TestClient(FastAPI(routes=api_routes(engine, settings)))


def sse(response) -> list:
    lines = [line for line in response.text.splitlines() if line.startswith("data: ")]
    return [line[6:] if line == "data: [DONE]" else json.loads(line[6:]) for line in lines]


def test_plain_and_streamed_completions_agree(kb, settings):
    # the model cites [2] first: the checked answer renumbers it, and so does the draft
    draft = "Russia's delegation was led by Vladimir Medinsky [2]."
    engine = Engine(settings, kb, FakeLLM(draft, draft))
    passages_shown = len(engine.retriever.retrieve(QUESTION).candidates)
    if passages_shown < 2:
        pytest.skip("the scripted retrieval shows one passage only")
    client = client_for(engine, settings)
    plain = client.post("/v1/chat/completions", json={"messages": [user(QUESTION)]})
    assert plain.status_code == 200, plain.text
    body = plain.json()
    content = body["choices"][0]["message"]["content"]
    assert "Medinsky" in content and body["refused"] is False and body["citations"]

    streamed = client.post(
        "/v1/chat/completions", json={"messages": [user(QUESTION)], "stream": True, "draft": True}
    )
    assert streamed.headers["content-type"].startswith("text/event-stream")
    chunks = sse(streamed)
    assert chunks[-1] == "[DONE]"
    deltas = [c["choices"][0]["delta"] for c in chunks[:-1]]
    assert deltas[0]["role"] == "assistant"
    assert "".join(d.get("content", "") for d in deltas) == content  # never the draft
    assert "".join(d.get("draft", "") for d in deltas) == content == draft.replace("[2]", "[1]")
    last = chunks[-2]
    assert last["choices"][0]["finish_reason"] == "stop"
    assert last["citations"] == body["citations"] and last["refused"] is False
    assert last["usage"]["prompt_tokens"] > 0


def test_follow_up_history_reaches_the_engine(kb, settings):
    engine = Engine(settings, kb, FakeLLM("Russia's lead negotiator", ANSWER))
    client = client_for(engine, settings)
    reply = client.post(
        "/v1/chat/completions",
        json={
            "messages": [
                user("Who led Russia's delegation?"),
                assistant("Vladimir Medinsky [1]."),
                user("Who was his counterpart? Tell me about him"),
            ]
        },
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["question_used"]


def test_errors_are_openai_error_objects(kb, settings):
    client = client_for(Engine(settings, kb, FakeLLM()), settings)
    bad = client.post("/v1/chat/completions", content=b"{not json")
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"
    empty = client.post("/v1/chat/completions", json={"messages": [assistant("hi")]})
    assert empty.status_code == 400
    assert set(empty.json()["error"]) == {"message", "type", "param", "code"}
    long = client.post("/v1/chat/completions", json={"messages": [user("why " * 400)]})
    assert long.status_code == 400 and long.json()["error"]["code"] == "question_too_long"
    missing = client.get("/v1/embeddings")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_url"


def test_a_failing_model_is_a_redacted_error_plain_and_streamed(kb, settings):
    from pydantic import SecretStr

    settings = settings.model_copy(update={"llm_api_key": SecretStr("sk-live-abcdefgh1234")})
    engine = Engine(settings, kb, FailingLLM("The LLM failed (key sk-live-abcdefgh1234)"))
    client = client_for(engine, settings)
    plain = client.post("/v1/chat/completions", json={"messages": [user(QUESTION)]})
    assert plain.status_code == 502 and "sk-live" not in plain.text
    assert plain.json()["error"]["code"] == "llm"
    streamed = client.post(
        "/v1/chat/completions", json={"messages": [user(QUESTION)], "stream": True}
    )
    chunks = sse(streamed)
    assert chunks[-1] == "[DONE]" and "error" in chunks[-2] and "sk-live" not in streamed.text


def test_models_lists_rag_with_its_knowledge_base(kb, settings):
    client = client_for(Engine(settings, kb, FakeLLM()), settings)
    (model,) = client.get("/v1/models").json()["data"]
    assert model["id"] == "rag" and model["knowledge_base"]["name"] == settings.collection
    assert model["knowledge_base"]["documents"] == 1


def test_key_required_when_set(kb, settings):
    from pydantic import SecretStr

    settings = settings.model_copy(update={"api_key": SecretStr("k-123456")})
    client = client_for(Engine(settings, kb, FakeLLM()), settings)
    denied = client.get("/v1/models")
    assert denied.status_code == 401 and denied.json()["error"]["code"] == "invalid_api_key"
    allowed = client.get("/v1/models", headers={"Authorization": "Bearer k-123456"})
    assert allowed.status_code == 200


def test_empty_knowledge_base_answers_how_to_add_documents(settings):
    empty = KnowledgeBase(settings, FakeEmbedding())
    client = client_for(Engine(settings, empty, FakeLLM()), settings)
    body = client.post("/v1/chat/completions", json={"messages": [user(QUESTION)]}).json()
    assert body["refused"] is True and body["reason"] == "no_documents"
    assert "rag ingest" in body["choices"][0]["message"]["content"] and body["citations"] == []


def test_an_answer_that_breaks_mid_stream_ends_with_an_error_chunk(kb, settings):
    from pydantic import SecretStr

    settings = settings.model_copy(update={"api_key": SecretStr("k-123456")})
    engine = Engine(settings, kb, FakeLLM(RuntimeError("socket closed, key k-123456")))
    client = client_for(engine, settings)
    auth = {"Authorization": "Bearer k-123456"}
    body = {"messages": [user(QUESTION)], "stream": True}
    streamed = client.post("/v1/chat/completions", json=body, headers=auth)
    assert streamed.status_code == 200  # the stream had started
    chunks = sse(streamed)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1] == "[DONE]" and chunks[-2]["error"]["type"] == "server_error"
    assert "k-123456" not in streamed.text
    plain = client.post("/v1/chat/completions", json={"messages": [user(QUESTION)]}, headers=auth)
    assert plain.status_code == 500 and "k-123456" not in plain.text

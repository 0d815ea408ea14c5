"""The OpenAI chat-completions wire format, both ways: a request's messages become the question
and the history `Engine.answer()` takes; an `AnswerResult` becomes a completion, or the chunks
of a streamed one, and back into a result for a client. Pure functions: no web framework, no
engine (docs/API.md is the contract)."""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import Any

from rag.events import AnswerResult, Citation, SentenceVerdict, Turn

MODEL_ID = "rag"
CITATION_FIELDS = (
    *("n", "doc_id", "title", "text", "start", "end", "page", "section", "support"),
    *("chunk_start", "chunk_end", "published"),  # the span is text[start - chunk_start: …]
)
# Roles that carry no part of the conversation the engine answers: rag's prompt is its own.
IGNORED_ROLES = frozenset({"system", "developer", "tool", "function"})


class BadRequest(ValueError):
    """A request the API cannot answer; the message says what to change."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class ChatRequest:
    question: str
    history: list[Turn]
    stream: bool = False
    draft: bool = False  # stream the model's unchecked text too, in `delta.draft`


def _text(content: Any, where: str) -> str:
    """A message's content: a string, or a list of text parts (the newer OpenAI form)."""
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise BadRequest(f"{where}: only text content parts are supported", where)
            if not isinstance(part.get("text"), str):
                raise BadRequest(f"{where}: a text part needs a string 'text'", where)
            texts.append(part["text"])
        return "\n".join(texts)
    raise BadRequest(f"{where}: content must be a string or a list of text parts", where)


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise BadRequest(f"'{name}' must be true or false", name)
    return value


def parse_chat_request(body: Any) -> ChatRequest:
    """The question is the last message, which must be the user's; the earlier user messages,
    each with the assistant reply that follows it, are the history (`Turn`s), as the page keeps
    completed exchanges only. System (and developer, tool) messages are ignored."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list of messages", "messages")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise BadRequest("'model' must be a string", "model")
    n = body.get("n", 1)
    if n not in (1, None):
        raise BadRequest("'n' must be 1: rag gives one answer per question", "n")
    conversation: list[tuple[str, str]] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise BadRequest(f"{where} must be an object with 'role' and 'content'", where)
        role = message.get("role")
        if not isinstance(role, str):
            raise BadRequest(f"{where}.role must be a string", f"{where}.role")
        if role in IGNORED_ROLES:
            continue
        if role not in ("user", "assistant"):
            raise BadRequest(f"{where}.role '{role}' is not supported", f"{where}.role")
        conversation.append((role, _text(message.get("content"), f"{where}.content")))
    if not conversation or conversation[-1][0] != "user":
        raise BadRequest("the last message must be the user's question", "messages")
    question = conversation[-1][1]
    if not question.strip():
        raise BadRequest("the user's question is empty", "messages")
    history: list[Turn] = []
    earlier = conversation[:-1]
    for (role, text), (next_role, reply) in pairwise(earlier):
        if role == "user" and next_role == "assistant":
            history.append(Turn(text, reply))
    return ChatRequest(question, history, _flag(body, "stream"), _flag(body, "draft"))


# ---------------------------------------------------------------- responses


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def citations_json(result: AnswerResult) -> list[dict[str, Any]]:
    return [{k: asdict(c)[k] for k in CITATION_FIELDS} for c in result.citations]


def usage(result: AnswerResult) -> dict[str, int]:
    """Tokens the model read and wrote for the answer, as the result counts them (tiktoken);
    0 when no model was asked (a refusal with nothing relevant found)."""
    prompt = int(result.tokens.get("prompt", 0))
    completion = int(result.tokens.get("completion", 0))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def rag_fields(result: AnswerResult) -> dict[str, Any]:
    """What rag adds to OpenAI's objects (top level): the citations behind the answer's marks,
    and the verdict on each sentence of the model's answer with the verifier's probability."""
    answer = result.to_json()
    return {
        "citations": citations_json(result),
        "refused": result.refused,
        "reason": result.reason,
        "question_used": result.question_used,
        "sentences": answer["sentences"],
        "answerability": answer["answerability"],
        "timings": answer["timings"],
        "tokens": answer["tokens"],
    }


def answer_result(question: str, content: str, fields: dict[str, Any]) -> AnswerResult:
    """The result again, from a completion's content and rag's fields (`rag_fields`): what a
    client of the API (`rag.server.client`) hands its shell."""
    return AnswerResult(
        answer=content,
        refused=fields["refused"],
        citations=[Citation(**citation) for citation in fields["citations"]],
        question=question,
        question_used=fields["question_used"],
        timings=fields.get("timings", {}),
        tokens=fields.get("tokens", {}),
        reason=fields.get("reason"),
        sentences=[SentenceVerdict(**s) for s in fields.get("sentences", [])],
        answerability=fields.get("answerability"),
    )


def completion(result: AnswerResult, cid: str, created: int | None = None) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created or int(time.time()),
        "model": MODEL_ID,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.answer},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": usage(result),
        **rag_fields(result),
    }


def chunk(
    cid: str,
    created: int,
    delta: dict[str, Any],
    finish_reason: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": MODEL_ID,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
        **extra,
    }


def final_chunks(result: AnswerResult, cid: str, created: int) -> list[dict[str, Any]]:
    """The checked answer as one content delta, then the chunk that ends the stream with the
    citations, `refused` and `usage`."""
    chunks = []
    if result.answer:
        chunks.append(chunk(cid, created, {"content": result.answer}))
    chunks.append(chunk(cid, created, {}, "stop", usage=usage(result), **rag_fields(result)))
    return chunks


def error_body(message: str, type_: str, code: str | None = None, param: str | None = None):
    """OpenAI's error object."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def model_list(knowledge_base: dict[str, Any], created: int = 0) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {
                "id": MODEL_ID,
                "object": "model",
                "created": created,
                "owned_by": "rag",
                "knowledge_base": knowledge_base,
            }
        ],
    }

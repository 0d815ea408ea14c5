"""Every model rag talks to sits behind an OpenAI-compatible chat endpoint (OpenAI, vLLM,
Ollama, llama.cpp, or the shipped model's local server). This module is the one place that
turns an endpoint's address into a client: rag's own `OpenAICompatibleLLM`, and the llama-index
`OpenAILike` object that the eval's baseline pipeline needs.

`OpenAICompatibleLLM` speaks the wire protocol (a streamed `POST /chat/completions` read as
server-sent events) with httpx and httpx-sse rather than through the official `openai` client:
rag makes one kind of call, and importing the official client costs a one-shot `rag ask` about
as long as everything else it imports besides llama-index and Chroma."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import httpx
from httpx_sse import EventSource, SSEError, connect_sse

from rag.llm.base import LLM, LLMError, Message

ERROR_DETAIL_CHARS = 300  # of an endpoint's error reply quoted to the user


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    model: str
    api_key: str | None = None
    timeout: float = 60.0  # seconds: a whole request that is not streamed
    max_retries: int = 1  # of a request that could not connect (never of a timed-out one)
    connect_timeout: float = 5.0
    first_token_timeout: float = 30.0  # and the longest pause between streamed pieces

    @property
    def description(self) -> str:
        return f"{self.model} at {self.base_url}"

    @property
    def chat_url(self) -> str:
        return f"{self.base_url.rstrip('/')}/chat/completions"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def http_client(self) -> httpx.Client:
        """For streamed chat: it fails after `connect_timeout` without a connection and after
        `first_token_timeout` without a byte of reply (or between two pieces)."""
        timeout = httpx.Timeout(
            self.first_token_timeout,
            connect=self.connect_timeout,
            write=self.connect_timeout,
            pool=self.connect_timeout,
        )
        return httpx.Client(timeout=timeout, headers=self.headers)


def llama_index_llm(endpoint: Endpoint, max_tokens: int, context_window: int) -> Any:
    """The same endpoint as a llama-index LLM (for pipelines built from llama-index parts)."""
    from llama_index.llms.openai_like import OpenAILike

    return OpenAILike(
        model=endpoint.model,
        api_base=endpoint.base_url,
        api_key=endpoint.api_key or "none",
        is_chat_model=True,
        temperature=0.0,
        max_tokens=max_tokens,
        context_window=context_window,
        timeout=endpoint.timeout,
        max_retries=endpoint.max_retries,
    )


class OpenAICompatibleLLM(LLM):
    """Streamed chat completions at temperature 0 from any OpenAI-compatible endpoint."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.description = endpoint.description

    @property
    def base_url(self) -> str:
        return self.endpoint.base_url

    @property
    def model(self) -> str:
        return self.endpoint.model

    @cached_property
    def _http(self) -> httpx.Client:
        return self.endpoint.http_client()

    def stream(self, messages: Sequence[Message], max_tokens: int) -> Iterator[str]:
        request = {
            "model": self.endpoint.model,
            "messages": list(messages),
            "temperature": 0.0,
            "max_tokens": max_tokens,
            "stream": True,
        }
        with ExitStack() as request_open:  # leaving it stops the model's request too
            events = self._open(request_open, request)
            try:
                for event in events.iter_sse():
                    if event.data.strip() == "[DONE]":
                        return
                    if piece := self._piece(event.event, event.data):
                        yield piece
            except httpx.TimeoutException as exc:
                raise LLMError(self._timed_out()) from exc
            except (httpx.HTTPError, SSEError) as exc:
                raise LLMError(self._failed_mid_answer(str(exc))) from exc

    def _open(self, request_open: ExitStack, request: dict[str, Any]) -> EventSource:
        """The streamed request, retried only when it could not even connect."""
        for attempt in range(self.endpoint.max_retries + 1):
            try:
                events = request_open.enter_context(
                    connect_sse(self._http, "POST", self.endpoint.chat_url, json=request)
                )
            except httpx.TimeoutException as exc:
                raise LLMError(self._timed_out()) from exc
            except httpx.TransportError as exc:
                if attempt < self.endpoint.max_retries:
                    continue
                raise LLMError(f"Cannot reach the LLM at {self.base_url}: is it running?") from exc
            reply = events.response
            if reply.is_error:
                with suppress(httpx.HTTPError):  # the message is read if it can be
                    reply.read()
                raise LLMError(
                    f"The LLM at {self.base_url} answered HTTP {reply.status_code}: "
                    f"{_error_message(reply)}"
                )
            return events
        raise AssertionError("unreachable")

    def _piece(self, event: str, data: str) -> str:
        """The text one streamed event adds; an error event (some endpoints report a failure
        mid-answer this way) raises."""
        try:
            chunk = json.loads(data)
        except ValueError as exc:
            raise LLMError(self._failed_mid_answer(f"unreadable event {data[:80]!r}")) from exc
        if event == "error" or (isinstance(chunk, dict) and "error" in chunk):
            detail = chunk.get("error", chunk) if isinstance(chunk, dict) else chunk
            raise LLMError(self._failed_mid_answer(_message_of(detail)))
        choices = chunk.get("choices") if isinstance(chunk, dict) else None
        if not choices:
            return ""
        return (choices[0].get("delta") or {}).get("content") or ""

    def _timed_out(self) -> str:
        return (
            f"The model endpoint {self.base_url} is not answering (no reply within "
            f"{self.endpoint.first_token_timeout:g} s)."
        )

    def _failed_mid_answer(self, detail: str) -> str:
        return f"The LLM at {self.base_url} failed mid-answer ({detail})."

    def prime(self, messages: Sequence[Message]) -> None:
        """Ask for one token: a server with a prompt cache then holds the prefix."""
        for _ in self.stream(messages, max_tokens=1):
            pass


def _error_message(reply: httpx.Response) -> str:
    """What an error reply says: its OpenAI error object's message, else its text."""
    try:
        body = reply.json()
    except ValueError:
        return reply.text.strip()[:ERROR_DETAIL_CHARS] or reply.reason_phrase
    return _message_of(body.get("error", body) if isinstance(body, dict) else body)


def _message_of(detail: Any) -> str:
    if isinstance(detail, dict) and isinstance(detail.get("message"), str):
        return detail["message"][:ERROR_DETAIL_CHARS]
    return str(detail)[:ERROR_DETAIL_CHARS]

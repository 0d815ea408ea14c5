"""Every model rag talks to sits behind an OpenAI-compatible chat endpoint (OpenAI, vLLM,
Ollama, llama.cpp, or the shipped model's local server). This module is the one place that
turns an endpoint's address into a client: rag's own `OpenAICompatibleLLM`, and the llama-index
`OpenAILike` object that the eval's baseline pipeline needs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from rag.llm.base import LLM, LLMError, Message


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


def openai_client(endpoint: Endpoint) -> Any:
    """The official client for the endpoint, for streamed chat: it fails after
    `connect_timeout` without a connection and after `first_token_timeout` without a byte of
    reply, and retries nothing itself (`OpenAICompatibleLLM` retries what never connected)."""
    import httpx
    import openai

    timeout = httpx.Timeout(
        endpoint.first_token_timeout,
        connect=endpoint.connect_timeout,
        write=endpoint.connect_timeout,
        pool=endpoint.connect_timeout,
    )
    return openai.OpenAI(
        base_url=endpoint.base_url,
        api_key=endpoint.api_key or "none",
        timeout=timeout,
        max_retries=0,
    )


def load_client_library() -> None:
    """Import the OpenAI client with its chat resources ahead of the first question: that
    takes a second or more of a small CPU, which the first answer would otherwise spend while
    the model server, on the same cores, reads its prompt."""
    import openai
    import openai.resources.chat  # noqa: F401  (the client imports it on first use)


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
    def _client(self) -> Any:
        return openai_client(self.endpoint)

    def stream(self, messages: Sequence[Message], max_tokens: int) -> Iterator[str]:
        import openai

        chunks = self._open(messages, max_tokens)
        try:
            for chunk in chunks:
                if chunk.choices and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content
        except openai.APITimeoutError as exc:
            raise LLMError(self._timed_out()) from exc
        except openai.APIError as exc:
            raise LLMError(f"The LLM at {self.base_url} failed mid-answer ({exc}).") from exc
        finally:
            chunks.close()  # a stopped answer stops the model's request too

    def _open(self, messages: Sequence[Message], max_tokens: int) -> Any:
        """The streamed request, retried only when it could not even connect."""
        import openai

        for attempt in range(self.endpoint.max_retries + 1):
            try:
                return self._client.chat.completions.create(
                    model=self.endpoint.model,
                    messages=list(messages),
                    temperature=0.0,
                    max_tokens=max_tokens,
                    stream=True,
                )
            except openai.APITimeoutError as exc:
                raise LLMError(self._timed_out()) from exc
            except openai.APIConnectionError as exc:
                if attempt < self.endpoint.max_retries:
                    continue
                raise LLMError(f"Cannot reach the LLM at {self.base_url}: is it running?") from exc
            except openai.APIStatusError as exc:
                raise LLMError(
                    f"The LLM at {self.base_url} answered HTTP {exc.status_code}: {exc.message}"
                ) from exc
        raise AssertionError("unreachable")

    def _timed_out(self) -> str:
        return (
            f"The model endpoint {self.base_url} is not answering (no reply within "
            f"{self.endpoint.first_token_timeout:g} s)."
        )

    def prime(self, messages: Sequence[Message]) -> None:
        """Ask for one token: a server with a prompt cache then holds the prefix."""
        for _ in self.stream(messages, max_tokens=1):
            pass

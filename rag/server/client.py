"""`rag ask` through a `rag serve` already running on this machine.

A one-shot `rag ask` spends most of its time starting: importing the search libraries, loading
the embedder, the keyword index and the model, and reading the whole prompt. A running `rag serve`
has all of it warm. When one answers on this machine's `RAG_PORT` and would have searched the
same store with the same settings (`Settings.answer_fingerprint`), `rag ask` sends it the
question over the OpenAI-compatible API and turns the streamed reply back into the engine's own
events, so the CLI prints exactly what it would have printed. Standard library only: the point
is to import nothing heavy.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

from rag.config import Settings
from rag.events import AnswerResult, Event, Final, Searching, Token, Turn
from rag.server import protocol

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 1.0  # a server on this machine answers /v1/models in milliseconds


class ServedEngine:
    """The `answer()` event stream of the engine inside a running `rag serve`."""

    def __init__(self, base_url: str, settings: Settings) -> None:
        self.base_url = base_url.rstrip("/")
        self.settings = settings
        self.headers = {"Content-Type": "application/json"}
        if settings.api_key is not None and settings.api_key.get_secret_value():
            self.headers["Authorization"] = f"Bearer {settings.api_key.get_secret_value()}"

    @classmethod
    def find(cls, settings: Settings) -> ServedEngine | None:
        """The `rag serve` on 127.0.0.1:`port` if it answers for the same store and settings."""
        served = cls(f"http://127.0.0.1:{settings.port}", settings)
        try:
            with served._open("GET", "/v1/models", timeout=PROBE_TIMEOUT) as response:
                models = json.load(response)
            knowledge_base = models["data"][0]["knowledge_base"]
        except (OSError, ValueError, LookupError, TypeError) as exc:
            log.debug("no rag serve to answer at %s: %s", served.base_url, exc)
            return None
        if knowledge_base.get("settings") != settings.answer_fingerprint():
            log.info("the rag serve at %s has other settings: answering here", served.base_url)
            return None
        log.info("answering through the rag serve at %s", served.base_url)
        return served

    def _open(self, method: str, path: str, body: dict | None = None, timeout: float = 0):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base_url + path, data=data, headers=self.headers, method=method
        )
        return urllib.request.urlopen(request, timeout=timeout or None)

    def answer(self, question: str, history: list[Turn] | None = None) -> Iterator[Event]:
        """The same events, in the same order, as `Engine.answer()`; a failure of the server or
        of the connection is a `Final` with an error, as the engine reports its model's."""
        messages: list[dict[str, str]] = []
        for turn in history or []:
            messages += [
                {"role": "user", "content": turn.question},
                {"role": "assistant", "content": turn.answer},
            ]
        messages.append({"role": "user", "content": question})
        body = {"model": "rag", "messages": messages, "stream": True, "draft": True}
        timeout = self.settings.local_llm_first_token_timeout + self.settings.llm_timeout
        try:
            with self._open("POST", "/v1/chat/completions", body, timeout=timeout) as response:
                yield from self._events(question, response)
                return
        except urllib.error.HTTPError as exc:
            message, code = _error_of(exc)
        except (OSError, ValueError, LookupError, TypeError) as exc:  # gone, or not its reply
            message, code = f"the rag serve at {self.base_url} stopped answering: {exc!r}", "llm"
        yield Final(_failed(question, message, code))

    def _events(self, question: str, response: Any) -> Iterator[Event]:
        content = ""
        for line in response:
            data = line.decode().strip().removeprefix("data:").strip()
            if not data:
                continue
            if data == "[DONE]":
                break
            chunk = json.loads(data)
            if "error" in chunk:
                error = chunk["error"]
                yield Final(_failed(question, error.get("message"), error.get("code")))
                return
            (choice,) = chunk["choices"]
            content += choice["delta"].get("content") or ""
            if choice["finish_reason"]:
                yield Final(protocol.answer_result(question, content, chunk))
                return
            if "question_used" in chunk:
                yield Searching(chunk["question_used"])
            if choice["delta"].get("draft"):
                yield Token(choice["delta"]["draft"])
        yield Final(_failed(question, f"the rag serve at {self.base_url} ended without an answer"))


def _failed(question: str, message: str | None, code: str | None = None) -> AnswerResult:
    return AnswerResult(
        answer="",
        refused=False,
        citations=[],
        question=question,
        question_used=question,
        error=message or "the rag serve failed",
        error_code=code,
    )


def _error_of(error: urllib.error.HTTPError) -> tuple[str, str | None]:
    """The message and code of an OpenAI error object (the server redacted it)."""
    try:
        body = json.loads(error.read())["error"]
        return body["message"], body.get("code")
    except (OSError, ValueError, LookupError, TypeError):
        return f"the rag serve answered HTTP {error.code}", None

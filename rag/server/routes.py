"""The OpenAI-compatible API (/v1): a thin shell over `engine.answer()`'s event stream, served by
the page's own FastAPI app on the same port (`rag.web.app.serve`).

Streaming: the engine streams the model's text before checking it, and its `Final` answer may
differ (citation marks renumbered 1..k, unsupported sentences dropped, or a refusal). The page
redraws the answer when `Final` arrives; an OpenAI stream can only append. So `delta.content`
carries the checked answer only, sent when the engine has checked it: concatenated deltas always
equal the plain completion's content and its `citations`. A client that asks for it
(`"draft": true`) also gets the unchecked text live in `delta.draft`, to show and then replace.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.routing import BaseRoute

from rag.config import Settings
from rag.events import Final, Searching, Token
from rag.security import api_refusal, redact
from rag.server import protocol
from rag.server.protocol import BadRequest

log = logging.getLogger(__name__)

QUESTION_ERRORS = frozenset({"empty_question", "question_too_long"})
_DONE = object()


def error_response(status: int, message: str, type_: str, code: str | None = None, param=None):
    return JSONResponse(protocol.error_body(message, type_, code, param), status_code=status)


def _sse(data: dict[str, Any] | str) -> str:
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {text}\n\n"


def _close(stream: object) -> None:
    close = getattr(stream, "close", None)
    if callable(close):
        close()


class Answers:
    """Runs the engine's (blocking) event stream off the event loop, a bounded number at a
    time, and always closes it: a client that goes away stops the model's request too."""

    def __init__(self, engine: Any, concurrency: int) -> None:
        self.engine = engine
        self.slots = anyio.Semaphore(concurrency)

    async def events(self, question: str, history: list) -> AsyncIterator[object]:
        async with self.slots:
            stream: Iterator[object] = await anyio.to_thread.run_sync(
                self.engine.answer, question, history
            )
            try:
                while (event := await anyio.to_thread.run_sync(next, stream, _DONE)) is not _DONE:
                    yield event
            finally:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(_close, stream)


def api_routes(engine: Any, settings: Settings, concurrency: int = 4) -> list[BaseRoute]:
    """The /v1 routes, to be served by the app that serves the page (they come first)."""
    router = APIRouter()
    answers = Answers(engine, concurrency)

    def refused(request: Request) -> JSONResponse | None:
        refusal = api_refusal(settings, request.headers.get("authorization"))
        if refusal is None:
            return None
        status, message, code = refusal
        type_ = "authentication_error" if status == 401 else "permission_error"
        return error_response(status, message, type_, code)

    def failed(message: str) -> str:
        return redact(message, settings)

    @router.get("/v1/models")
    async def models(request: Request) -> JSONResponse:
        if (response := refused(request)) is not None:
            return response
        try:
            stats = await anyio.to_thread.run_sync(engine.status)
        except Exception as exc:
            return error_response(500, failed(f"status unavailable: {exc}"), "server_error")
        kb = {
            "name": settings.collection,
            "documents": stats.get("documents"),
            "chunks": stats.get("chunks"),
            # lets `rag ask` on this machine hand its question over only when it would have
            # searched the same store with the same settings
            "settings": settings.answer_fingerprint(),
        }
        return JSONResponse(protocol.model_list(kb))

    @router.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        if (response := refused(request)) is not None:
            return response
        try:
            body = json.loads(await request.body())
        except ValueError as exc:
            return error_response(400, f"invalid JSON: {exc}", "invalid_request_error", "bad_json")
        try:
            chat = protocol.parse_chat_request(body)
        except BadRequest as exc:
            return error_response(400, str(exc), "invalid_request_error", "bad_request", exc.param)

        cid, created = protocol.completion_id(), int(time.time())
        events = answers.events(chat.question, chat.history)
        # The first event comes before any byte is sent, so a question the engine refuses to
        # take (too long) is still an HTTP error, not a stream that fails.
        try:
            first = await anext(events)
        except Exception as exc:
            await events.aclose()
            log.warning("answer failed: %s", failed(repr(exc)))
            return error_response(500, failed(f"could not answer: {exc}"), "server_error")
        if isinstance(first, Final) and first.result.error_code in QUESTION_ERRORS:
            await events.aclose()
            code = first.result.error_code
            return error_response(400, first.result.error, "invalid_request_error", code)

        if not chat.stream:
            result = None
            try:
                event = first
                while True:
                    if isinstance(event, Final):
                        result = event.result
                        break
                    event = await anext(events)
            except StopAsyncIteration:
                pass
            except Exception as exc:
                log.warning("answer failed: %s", failed(repr(exc)))
                return error_response(500, failed(f"could not answer: {exc}"), "server_error")
            finally:
                await events.aclose()
            if result is None:
                return error_response(500, "the engine ended without an answer", "server_error")
            if result.error:
                return error_response(502, result.error, "server_error", result.error_code)
            return JSONResponse(protocol.completion(result, cid, created))

        async def stream() -> AsyncIterator[str]:
            yield _sse(protocol.chunk(cid, created, {"role": "assistant", "content": ""}))
            event: object = first
            try:
                while True:
                    if isinstance(event, Final):
                        result = event.result
                        if result.error:
                            yield _sse(
                                protocol.error_body(result.error, "server_error", result.error_code)
                            )
                        else:
                            for piece in protocol.final_chunks(result, cid, created):
                                yield _sse(piece)
                        yield _sse("[DONE]")
                        return
                    if chat.draft and isinstance(event, Token) and event.text:
                        yield _sse(protocol.chunk(cid, created, {"draft": event.text}))
                    elif chat.draft and isinstance(event, Searching):
                        searched = {"question_used": event.question_used}
                        yield _sse(protocol.chunk(cid, created, {}, **searched))
                    event = await anext(events)
            except StopAsyncIteration:
                message = "the engine ended without an answer"
            except Exception as exc:
                log.warning("answer failed: %s", failed(repr(exc)))
                message = failed(f"could not answer: {exc}")
            finally:
                await events.aclose()
            yield _sse(protocol.error_body(message, "server_error"))
            yield _sse("[DONE]")

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @router.api_route(
        "/v1/{path:path}",
        methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        include_in_schema=False,
    )
    async def unknown(request: Request, path: str) -> JSONResponse:
        if (response := refused(request)) is not None:
            return response
        return error_response(
            404, f"no such route: /v1/{path}", "invalid_request_error", "unknown_url"
        )

    return list(router.routes)

"""The LLM seam. rag talks to every model through an OpenAI-compatible endpoint: a remote one
(OpenAI, vLLM, Ollama, llama.cpp) when a base URL is configured, otherwise the shipped GGUF
served in-process by xllamacpp on 127.0.0.1 — or an already running `rag llm-server`."""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

from rag.config import Settings
from rag.models import qwen_gguf_path

log = logging.getLogger(__name__)

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": ...}


class LLMError(RuntimeError):
    """The LLM endpoint failed or could not be reached; the message is for the user."""


class LLM(Protocol):
    """What the chain needs from a model: streamed chat completions."""

    description: str

    def stream(self, messages: Sequence[Message], max_tokens: int) -> Iterator[str]: ...


class OpenAICompatibleLLM:
    """Any OpenAI-compatible chat endpoint, through llama-index's `OpenAILike`."""

    def __init__(
        self, base_url: str, model: str, api_key: str | None, timeout: float, max_retries: int
    ) -> None:
        from llama_index.llms.openai_like import OpenAILike

        self.base_url = base_url
        self.description = f"{model} at {base_url}"
        self._llm = OpenAILike(
            model=model,
            api_base=base_url,
            api_key=api_key or "none",
            is_chat_model=True,
            temperature=0.0,
            timeout=timeout,
            max_retries=max_retries,
            context_window=32768,
            reuse_client=True,
        )

    def stream(self, messages: Sequence[Message], max_tokens: int) -> Iterator[str]:
        import openai
        from llama_index.core.llms import ChatMessage

        chat = [ChatMessage(role=m["role"], content=m["content"]) for m in messages]
        try:
            for chunk in self._llm.stream_chat(chat, max_tokens=max_tokens):
                if chunk.delta:
                    yield chunk.delta
        except openai.APITimeoutError as exc:
            raise LLMError(f"The LLM at {self.base_url} timed out ({exc}).") from exc
        except openai.APIConnectionError as exc:
            raise LLMError(f"Cannot reach the LLM at {self.base_url}: is it running?") from exc
        except openai.APIStatusError as exc:
            raise LLMError(
                f"The LLM at {self.base_url} answered HTTP {exc.status_code}: {exc.message}"
            ) from exc


class LocalModelServer:
    """A GGUF served in this process by xllamacpp's OpenAI-compatible server on 127.0.0.1."""

    def __init__(self, gguf: Path, port: int, threads: int, n_ctx: int) -> None:
        import xllamacpp

        params = xllamacpp.CommonParams()
        params.model.path = str(gguf)
        params.n_ctx = n_ctx
        # Two slots, each keeping its own fixed prompt prefix warm in its KV cache (answer and
        # condense prompts); the server routes a request to the slot sharing the longest prefix.
        params.n_parallel = 2
        params.cache_prompt = True
        params.port = port
        params.verbosity = 0
        threads = threads or os.cpu_count() or 2
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        self._server = xllamacpp.Server(params)
        address = self._server.listening_address.rstrip("/")
        if not address.startswith("http"):
            address = f"http://{address}"
        self.base_url = f"{address}/v1"
        self.model_name = gguf.stem


def probe(base_url: str, timeout: float = 0.5) -> bool:
    """True when an OpenAI-compatible server answers /models at base_url."""
    try:
        with urllib.request.urlopen(f"{base_url.rstrip('/')}/models", timeout=timeout) as reply:
            return bool(json.load(reply).get("data"))
    except (OSError, ValueError):
        return False


_local_servers: dict[Path, LocalModelServer] = {}


def local_gguf(settings: Settings) -> Path:
    return settings.local_llm_gguf or qwen_gguf_path(settings.models_dir)


def start_local_server(settings: Settings, port: int | None = None) -> LocalModelServer:
    """Start (once per process) the shipped model's server."""
    gguf = local_gguf(settings)
    if gguf not in _local_servers:
        log.info("starting local model %s", gguf.name)
        _local_servers[gguf] = LocalModelServer(
            gguf,
            port=settings.local_llm_port if port is None else port,
            threads=settings.local_llm_threads,
            n_ctx=settings.local_llm_ctx,
        )
    return _local_servers[gguf]


def connect_llm(settings: Settings) -> LLM:
    """The configured endpoint; else a running shared local server; else start one in-process."""
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    if settings.llm_base_url:
        base_url, model = settings.llm_base_url, settings.llm_model
    else:
        shared = f"http://127.0.0.1:{settings.local_llm_port}/v1"
        if probe(shared):
            base_url = shared
        else:
            server = start_local_server(settings, port=0)
            base_url = server.base_url
        model = local_gguf(settings).stem
    return OpenAICompatibleLLM(
        base_url, model, key, timeout=settings.llm_timeout, max_retries=settings.llm_max_retries
    )

"""The composition root: the one place that builds rag's parts from settings.

Every shell (CLI, page, API, evals, benchmarks) asks here for an engine, a knowledge base or a
model; none of them constructs clients itself."""

from __future__ import annotations

from collections.abc import Callable

from llama_index.core.base.embeddings.base import BaseEmbedding

from rag.answer import Engine
from rag.answer.verifier import (
    SHIPPED_VERIFIER,
    FittedVerifier,
    LexicalVerifier,
    TokenEncoder,
    Verifier,
)
from rag.config import Settings
from rag.knowledge_base import KnowledgeBase
from rag.llm import LLM, Endpoint, OpenAICompatibleLLM


def build_embedder(settings: Settings) -> BaseEmbedding:
    """The shipped MiniLM, or an OpenAI-compatible embeddings endpoint when configured."""
    if settings.embed_base_url:
        from llama_index.embeddings.openai import OpenAIEmbedding

        key = settings.embed_api_key or settings.llm_api_key
        return OpenAIEmbedding(
            model_name=settings.embed_model,
            api_base=settings.embed_base_url,
            api_key=key.get_secret_value() if key else "none",
            max_retries=settings.llm_max_retries,
            timeout=settings.llm_timeout,
        )
    from rag.embed import MiniLMEmbedding

    return MiniLMEmbedding(settings.models_dir, threads=settings.local_llm_threads)


def build_knowledge_base(
    settings: Settings,
    check_config: bool = True,
    wait_for_writer: bool = True,
    on_wait: Callable[[str], None] | None = None,
) -> KnowledgeBase:
    """With `check_config=False` an index built with other settings opens anyway (reindex);
    `wait_for_writer=False` makes a write fail at once while another process writes."""
    return KnowledgeBase(
        settings,
        build_embedder(settings),
        check_config=check_config,
        wait_for_writer=wait_for_writer,
        on_wait=on_wait,
    )


def _endpoint(settings: Settings, base_url: str | None, model: str, key) -> Endpoint | None:
    if not base_url:
        return None
    return Endpoint(
        base_url,
        model,
        key.get_secret_value() if key else None,
        timeout=settings.llm_timeout,
        max_retries=settings.llm_max_retries,
        connect_timeout=settings.llm_connect_timeout,
        first_token_timeout=settings.llm_first_token_timeout,
    )


def llm_endpoint(settings: Settings) -> Endpoint | None:
    """The configured OpenAI-compatible endpoint; None means the shipped local model."""
    return _endpoint(settings, settings.llm_base_url, settings.llm_model, settings.llm_api_key)


def judge_endpoint(settings: Settings) -> Endpoint | None:
    """The eval's judge of citation support when one is configured apart from the answerer."""
    model = settings.judge_model or settings.llm_model
    return _endpoint(settings, settings.judge_base_url, model, settings.judge_api_key)


def build_llm(settings: Settings, share: bool = False) -> LLM:
    """The configured endpoint; else a running shared local server; else one in-process (on
    the shared port with `share`, for a long-lived process other commands may use)."""
    endpoint = llm_endpoint(settings)
    if endpoint is not None:
        return OpenAICompatibleLLM(endpoint)
    from rag.llm.local import connect_local_llm

    return connect_local_llm(settings, share=share)


def build_verifier(settings: Settings, embedder: BaseEmbedding) -> Verifier:
    """The configured or shipped fitted verifier, else the lexical one; with the shipped
    MiniLM as its token encoder when that is the embedder."""
    encoder = embedder if isinstance(embedder, TokenEncoder) else None
    path = settings.verifier_model or SHIPPED_VERIFIER
    verifier: Verifier = (
        FittedVerifier.load(path, encoder)
        if path.is_file() or settings.verifier_model
        else LexicalVerifier(encoder)
    )
    if settings.support_threshold is not None:
        verifier.threshold = settings.support_threshold
    return verifier


def build_engine(
    settings: Settings,
    llm: LLM | None = None,
    kb: KnowledgeBase | None = None,
    share_model: bool = False,
    connect_llm: Callable[[], LLM] | None = None,
) -> Engine:
    """An engine over the configured knowledge base; the LLM connects on first use, by
    `connect_llm` when given (a model already loading elsewhere), else by `build_llm`
    (`share_model`: see there)."""
    kb = kb or build_knowledge_base(settings)
    return Engine(
        settings,
        kb,
        llm=llm,
        connect_llm=connect_llm or (lambda: build_llm(settings, share=share_model)),
        verifier=lambda: build_verifier(settings, kb.embedder),
    )

"""The one settings object. Read from `RAG_*` environment variables and an optional TOML file.

Precedence: explicit arguments > environment > config file (`RAG_CONFIG` or `./rag.toml`) >
defaults. The OpenAI conventions `OPENAI_API_KEY` / `OPENAI_BASE_URL` are honoured too.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import cache
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

SHIPPED_EMBED_MODEL = "all-MiniLM-L6-v2-int8-dynamic-onnx"
SHIPPED_LLM_MODEL = "qwen2.5-coder-1.5b-instruct-q4_k_m"


# Settings that change neither what is searched nor what is answered: how a process serves,
# waits and authenticates. Two processes whose other settings agree give the same answers.
SERVING_ONLY = frozenset(
    {
        *("host", "port", "auth", "api_key", "max_upload_mb", "max_upload_files"),
        *("llm_api_key", "embed_api_key", "judge_base_url", "judge_model", "judge_api_key"),
        *("llm_timeout", "llm_max_retries", "llm_connect_timeout", "llm_first_token_timeout"),
        *("local_llm_first_token_timeout", "local_llm_port", "local_llm_threads"),
        "data_dir",  # stands in the store's location below
    }
)


def _config_file() -> Path:
    return Path(os.environ.get("RAG_CONFIG", "rag.toml"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAG_", extra="ignore", populate_by_name=True)

    # Storage
    data_dir: Path = Path(".rag")
    collection: str = "documents"
    chroma_url: str | None = Field(
        default=None, description="Chroma server, e.g. http://127.0.0.1:8000"
    )

    # Chunking (token counts, tiktoken cl100k)
    chunk_size: int = Field(default=64, ge=16, le=2048)
    chunk_overlap: int = Field(default=8, ge=0, le=512)

    # Embeddings: the shipped ONNX MiniLM unless an OpenAI-compatible endpoint is configured.
    embed_model: str = SHIPPED_EMBED_MODEL
    embed_base_url: str | None = None
    embed_api_key: SecretStr | None = None

    # LLM: always an OpenAI-compatible endpoint; with no base URL, rag serves the shipped model.
    llm_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("RAG_LLM_BASE_URL", "OPENAI_BASE_URL")
    )
    llm_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("RAG_LLM_API_KEY", "OPENAI_API_KEY")
    )
    llm_model: str = Field(
        default=SHIPPED_LLM_MODEL, validation_alias=AliasChoices("RAG_LLM_MODEL")
    )
    llm_timeout: float = Field(default=60.0, gt=0, description="a request that is not streamed")
    llm_max_retries: int = Field(default=1, ge=0, le=5, description="of a failed connection")
    llm_connect_timeout: float = Field(default=5.0, gt=0)
    # A hung endpoint costs at most this; the shipped model, in this process or a shared
    # `rag llm-server`, waits longer (local_llm_first_token_timeout): on a busy small CPU a long
    # prompt can take that long before its first token.
    llm_first_token_timeout: float = Field(default=30.0, gt=0)
    local_llm_first_token_timeout: float = Field(default=300.0, gt=0)
    llm_max_tokens: int = Field(default=160, ge=16)
    max_question_chars: int = Field(default=1000, ge=20, description="longer questions are refused")
    local_llm_gguf: Path | None = Field(default=None, description="Serve this GGUF instead")
    local_llm_port: int = Field(default=8766, description="Port of the shared local model server")
    local_llm_threads: int = Field(default=0, description="0 = all cores")
    local_llm_ctx: int = 4096

    # Evals: the judge of citation support (`rag eval`); unset = the answering LLM itself.
    judge_base_url: str | None = Field(default=None, description="OpenAI-compatible judge")
    judge_model: str | None = None
    judge_api_key: SecretStr | None = None

    # Retrieval and context budget
    retrieve_k: int = Field(default=10, ge=1, description="candidates from each retriever")
    # Keyword search and fusion rank sections of this many consecutive chunks (~256 tokens,
    # MultiHop-RAG's chunk size); the LLM reads each section's best chunk.
    section_chunks: int = Field(default=4, ge=1, le=32)
    top_k: int = Field(default=3, ge=1, description="passages shown to the LLM at most")
    context_tokens: int = Field(default=140, ge=32, description="token budget for passages")
    passage_context_chars: int = Field(
        default=400,
        ge=0,
        description="a passage shown to the LLM is its chunk completed to whole sentences, "
        "reaching at most this far on each side (0: the chunk alone)",
    )
    passage_sentences_after: int = Field(
        default=1,
        ge=0,
        le=5,
        description="for short questions, whole sentences shown after each passage's own "
        "(where a definition's default or condition often stands), within "
        "passage_context_chars",
    )
    # Long questions (see long_question_words) join facts of several passages: 140 tokens held
    # one or two of them. The prompt prefix is cached, so passages are what costs time.
    long_question_context_tokens: int = Field(default=280, ge=32)
    # Weighted RRF. Short questions are often paraphrases, where MiniLM finds what BM25 misses.
    # Long, entity-rich questions (MultiHop-style) are ranked far better by BM25: dense hits
    # mixed in at equal weight push its best chunks down, so there dense only adds recall below
    # BM25's hits and breaks near-ties. Measured with `rag eval` on the seed set and MultiHop dev
    # (evals/history.jsonl).
    dense_weight: float = 1.0
    keyword_weight: float = 2.0
    long_question_words: int = Field(default=20, description="content words that make it long")
    long_question_dense_weight: float = 0.05
    min_dense_score: float = Field(default=0.2, description="below this nothing is relevant")
    # Long questions: the first ranking's best sections, and the other sections of its best
    # articles, are ranked again by a learned linear model (rag.rank); 0 or 1 turns it off.
    rerank_pool: int = Field(default=40, ge=0)
    rerank_expand_docs: int = Field(default=20, ge=0)
    ranker_model: Path | None = Field(
        default=None, description="a model from evals/train_ranker.py; unset = the shipped one"
    )
    # Short questions: the fused chunks are ranked again by a learned model
    # (rag.retrieval.reranker.short_questions); False keeps the fused order.
    rerank_short_questions: bool = True
    short_ranker_model: Path | None = Field(
        default=None, description="a model from rag_eval.train_short_ranker; unset = shipped"
    )
    # Answers: the verifier that decides whether an answer's first claim is supported enough
    # to be given (rag.answer.verifier); unset = the shipped model, or the lexical check alone
    # where none ships.
    verifier_model: Path | None = Field(
        default=None, description="a model from rag_eval.train_verifier; unset = the shipped one"
    )
    support_threshold: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="least support probability of an answer's first claim; unset = the "
        "model's own, chosen for a target precision; 0 = never refuse for low support",
    )

    # Web page
    host: str = "127.0.0.1"
    port: int = 7860
    auth: SecretStr | None = Field(default=None, description="user:password for the page")
    api_key: SecretStr | None = Field(
        default=None, description="bearer key of the OpenAI-compatible API (/v1)"
    )
    max_upload_mb: int = 20
    max_upload_files: int = 20

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _config_file()
        if config_file.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    @property
    def uses_local_llm(self) -> bool:
        return not self.llm_base_url

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    def answer_fingerprint(self) -> str:
        """Equal for two processes that search the same store with the same settings, so give
        the same answers (`rag ask` then lets a running `rag serve` answer for it). Paths are
        made absolute: the same relative data dir in another folder is another store."""
        fields = self.model_dump(mode="json", exclude=set(SERVING_ONLY))
        for name, value in fields.items():
            if isinstance(getattr(self, name), Path):
                fields[name] = str(Path(value).resolve())
        # with a Chroma server the store is the server's; a local data dir then holds only
        # derived files (keyword indexes, models) that follow it
        fields["store"] = self.chroma_url or str(self.data_dir.resolve())
        text = json.dumps(fields, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@cache
def get_settings() -> Settings:
    """Settings for this process, read once."""
    return Settings()

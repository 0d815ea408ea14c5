"""Shared fixtures for system tests: the real shipped models, free ports, the `rag` executable."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from rag.models import smollm2_gguf_path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def free_port() -> Callable[[], int]:
    """Returns a port nothing listens on (bound and released)."""
    return _free_port


@pytest.fixture(scope="session")
def bin_dir() -> Path:
    """The venv's bin: `rag` and `chroma` live next to the running python."""
    return Path(sys.executable).parent


@pytest.fixture(scope="session")
def embedder(tmp_path_factory: pytest.TempPathFactory):
    """The shipped MiniLM embedder as rag runs it (int8 model derived afresh), loaded once."""
    from rag.embed import MiniLMEmbedding

    return MiniLMEmbedding(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """SmolLM2-135M: the small shipped GGUF that makes LLM tests quick."""
    return smollm2_gguf_path()


@pytest.fixture
def cli_env(tmp_path: Path) -> Callable[..., dict[str, str]]:
    """Environment for `rag` subprocesses: no RAG_*/OPENAI_* leaking in from outside, a data dir
    in tmp, and a shared-server port where nothing listens (so no stray server is used)."""

    def make(data_dir: Path | None = None, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "OPENAI_"))}
        env.update(
            RAG_DATA_DIR=str(data_dir or tmp_path / "data"),
            RAG_CONFIG=str(tmp_path / "no-such-rag.toml"),
            RAG_LOCAL_LLM_PORT=str(_free_port()),
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env

    return make

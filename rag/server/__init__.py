"""The OpenAI-compatible API (/v1) over `Engine.answer()`, served beside the page on one port;
and its client for `rag ask` (`rag.server.client`), which must not import the web stack."""

from __future__ import annotations

from typing import Any

__all__ = ["api_routes"]


def __getattr__(name: str) -> Any:
    if name == "api_routes":
        from rag.server.routes import api_routes

        return api_routes
    raise AttributeError(name)

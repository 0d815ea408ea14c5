"""The OpenAI-compatible API (/v1) over `Engine.answer()`, served beside the page on one port."""

from rag.server.routes import api_routes

__all__ = ["api_routes"]

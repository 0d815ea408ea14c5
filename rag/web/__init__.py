"""The web page: a Gradio shell over `engine.answer()`'s event stream and the knowledge base."""

from rag.web.app import build_app, serve

__all__ = ["build_app", "serve"]

"""The LLM seam (`LLM`), OpenAI-compatible endpoints, and the shipped model's local server."""

from rag.llm.base import LLM, LLMError, Message
from rag.llm.openai_compatible import Endpoint, OpenAICompatibleLLM

__all__ = ["LLM", "Endpoint", "LLMError", "Message", "OpenAICompatibleLLM"]

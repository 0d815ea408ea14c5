"""Answering: condense a follow-up, pick passages, prompt, stream, check the citations."""

from rag.answer.engine import Engine, cache_prompt_prefixes

__all__ = ["Engine", "cache_prompt_prefixes"]

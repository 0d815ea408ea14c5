"""The LLM seam: what the chain needs from a model, and nothing more."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": ...}


class LLMError(RuntimeError):
    """The LLM endpoint failed or could not be reached; the message is for the user."""


class LLM(ABC):
    """A chat model that streams its reply.

    `prime` puts a fixed prompt prefix into the model server's cache so later prompts that
    start with it skip recomputing it; a model without such a cache has nothing to do."""

    description: str = "LLM"

    @abstractmethod
    def stream(self, messages: Sequence[Message], max_tokens: int) -> Iterator[str]:
        """The reply's text, piece by piece; raises LLMError when the endpoint fails."""

    def prime(self, messages: Sequence[Message]) -> None:  # noqa: B027  (optional hook)
        """Cache this prompt prefix, where the model server can."""

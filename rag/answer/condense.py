"""Follow-ups: a question that leans on the conversation is rewritten to stand alone."""

from __future__ import annotations

import re
from collections.abc import Sequence

from rag import prompts
from rag.events import Turn
from rag.llm import LLM, Message

HISTORY_TURNS = 3
_REFERRING = re.compile(
    r"\b(he|she|it|its|they|them|him|his|her|hers|their|theirs|that|this|those|these|there|"
    r"then|same|also|too|other|another|former|latter|else)\b",
    re.IGNORECASE,
)


def needs_condensing(question: str, history: Sequence[Turn]) -> bool:
    """A follow-up needs rewriting only when it leans on the conversation."""
    return bool(history) and (bool(_REFERRING.search(question)) or len(question.split()) <= 3)


def condense_messages(question: str, history: Sequence[Turn]) -> list[Message]:
    lines = []
    for turn in history[-HISTORY_TURNS:]:
        lines += [f"User: {turn.question}", f"Assistant: {turn.answer}"]
    return prompts.conversation("condense", history="\n".join(lines), question=question)


def warm_up_messages() -> list[Message]:
    """The condense prompt's fixed prefix with a placeholder conversation."""
    return prompts.conversation("condense", history="User: Hi\nAssistant: Hi", question="Hi?")


def condense(llm: LLM, question: str, history: Sequence[Turn]) -> str:
    """The follow-up as a standalone question (the question itself if the model gives none)."""
    text = "".join(llm.stream(condense_messages(question, history), max_tokens=64))
    rewritten = text.strip().split("\n")[0].strip().strip('"')
    rewritten = re.sub(r"^(rewritten question|question)\s*:\s*", "", rewritten, flags=re.I)
    return rewritten or question

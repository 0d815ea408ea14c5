"""Prompts are text files in `prompts/` with `{placeholders}`; here they are loaded and filled."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from rag.llm import Message


def prompts_dir() -> Path:
    """The repo's prompts/ in a checkout; the copy packaged into the wheel otherwise."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "prompts", here / "_prompts"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("prompts/ directory not found")


@cache
def load(name: str) -> str:
    return (prompts_dir() / f"{name}.txt").read_text(encoding="utf-8")


def render(name: str, **values: str) -> str:
    """Fill a prompt file; only named placeholders are replaced, so braces in values are safe."""
    text = load(name)
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text.strip()


def refusal_text() -> str:
    return load("refusal").strip()


def conversation(name: str, **values: str) -> list[Message]:
    """A file of `### user` / `### assistant` sections as chat messages (worked examples)."""
    text = render(name, **values)
    parts = re.split(r"^### (user|assistant|system)\s*$", text, flags=re.MULTILINE)
    return [
        {"role": role, "content": content.strip()}
        for role, content in zip(parts[1::2], parts[2::2], strict=True)
    ]

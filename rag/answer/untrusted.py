"""Text in documents that addresses the assistant: data, never instructions, never evidence.

A document may carry lines written for an AI reader ("Note for AI assistants: …", fake role
tags, "ignore previous instructions", in any language, spaced out or in base64). Such lines are
cut from what the model is shown and from what can support an answer, so an answer that only
they could support is refused and their links and numbers never reach the user.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator

from rag.text import passage_sentences

# Who such lines address, in the languages people write documents in.
_AI = (
    r"(?:ai|a\.i\.|llms?|chat ?bots?|language models?|(?:ai |virtual |digital )?assistants?|"
    r"automated (?:readers?|systems?|agents?|tools?)|ai (?:readers?|agents?|models?)|"
    r"ki(?:-assistent(?:en)?)?|ia|assistants? ia|asistentes? de ia|ии(?:-ассистент\w*)?|"
    r"ассистент\w*|ai助手|aiアシスタント|المساعد\w*|للمساعدين\w*)"
)
# The same, named unambiguously (not "AI" or "IA" alone, which are also variable names).
_AI_NAMED = (
    r"(?:(?:ai |virtual |digital )?assistants?|chat ?bots?|llms?|language models?|"
    r"automated (?:readers?|agents?)|"
    r"ki-assistent\w*|asistentes? de ia|assistants? ia|ии-ассистент\w*|ai助手|aiアシスタント|"
    r"للمساعدين\w*)"
)
_PATTERNS = [
    # addressing the AI reader: "Note for AI assistants:", "Assistant instruction:", "AI: …"
    rf"(?:note|notice|instructions?|information|correction|message|reminder|hint|hinweis|nota|"
    rf"примечание)\s+(?:for|to|für|para|aux|для)\s+(?:any |all |the )?(?:\w+ )?{_AI}\b",
    rf"(?:note aux|说明|ملاحظة)[^.\n]{{0,20}}{_AI}",
    rf"(?:^|[\s>(\[*/#-]){_AI_NAMED}\s*(?:instruction|note)?\s*[:：]",
    rf"\b{_AI_NAMED}\b[^.\n]{{0,30}}\b(?:reading|summari[sz]ing|answering)\b",
    rf"(?:给|へ|向){_AI}|{_AI}(?:へ|への|的说明)",
    # overriding instructions
    r"\b(?:ignore|disregard|forget|override)\b[^.!?\n]{0,40}\b(?:instructions?|prompt|above|"
    r"(?:previous|prior|earlier|your|all) (?:rules|context|documents?|passages?|text))\b",
    r"\b(?:ignoriere|ignorieren|ignorez|ignora las)\b|игнорир\w*|忽略|無視|تجاهل",
    r"\byou are now (?:a |an )?\w*bot\b|\bsystem (?:prompt|note)\b|\bnew operating rule\b",
    # role and prompt markup
    r"<\|im_(?:start|end)\|>|\[/?inst\]|###\s*(?:instruction|system|response)|</?passages?>",
    r"^\s*(?:system|assistant|user)\s*:",
    # telling the assistant what to answer
    r"\bwhenever you (?:answer|reply|respond)\b|\bwhen(?:ever)? you(?: are|'re)? asked\b",
    r"\b(?:if|when(?:ever)?) (?:a |any )?(?:user|anyone|visitor|customer)s? asks?\b",
    r"\bfor any question\b|\bnever (?:admit|say you)\b|\bdo not say you\b",
    r"\btell (?:the |every |all |any )?(?:users?|visitors?|customers?|"
    r"parents|residents|members|riders|employees?|attendees|guests)\b",
    r"\b(?:responses?|answers?|replies) about\b[^.\n]{0,60}\b(?:mention|include|say|state)",
    r"\b(?:answer|reply|respond)\b (?:with |by saying )?only\b",
]
_INSTRUCTION = re.compile("|".join(f"(?:{p})" for p in _PATTERNS), re.IGNORECASE | re.MULTILINE)
_SPACED = re.compile(r"\b(?:\w[ \u00a0]){3,}\w\b")
_BASE64 = re.compile(r"[A-Za-z0-9+/]{24,}={0,2}")
MAX_LINE_CHARS = 600  # an injected line is cut whole; a longer line, only its sentence


def _normalised(text: str) -> str:
    """Spaced-out letters joined ("i g n o r e" -> "ignore"), base64 decoded, white space
    single: obfuscation must not hide an instruction."""
    text = _SPACED.sub(lambda m: m.group(0).replace(" ", "").replace("\u00a0", ""), text)
    for blob in _BASE64.findall(text):
        try:
            decoded = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True)
            text += " " + decoded.decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            continue
    return " ".join(text.split())


# What spaced-out letters say once squeezed together, where word bounds are lost:
# "P l e a s e i g n o r e p r e v i o u s" -> "pleaseignoreprevious".
_SQUEEZED_MARKERS = (
    "ignoreprevious", "ignoreall", "ignoreyour", "disregardprevious", "previousinstructions",
    "noteforai", "forassistants", "aiassistant", "tellusers", "telltheuser", "systemnote",
    "youarenow",
)  # fmt: skip


def is_instruction(text: str) -> bool:
    if _INSTRUCTION.search(text) or _INSTRUCTION.search(_normalised(text)):
        return True
    return any(
        marker in re.sub(r"\W+", "", run.group(0)).lower()
        for run in _SPACED.finditer(text)
        for marker in _SQUEEZED_MARKERS
    )


def instruction_spans(text: str) -> list[tuple[int, int]]:
    """Offsets of the parts of `text` that address the assistant: in a line of usual length,
    from its first such sentence to the line's end (an injection's later sentences carry its
    payload without addressing anyone); in a longer line, each such sentence."""
    spans: list[tuple[int, int]] = []
    for line_start, line in _lines(text):
        if not line.strip() or not is_instruction(line):
            continue
        flagged = [m for m in passage_sentences(line) if is_instruction(m.group(0))]
        if not flagged:  # only the line as a whole reads as one (an instruction across a break)
            spans.append((line_start, line_start + len(line)))
        elif len(line) <= MAX_LINE_CHARS:
            spans.append((line_start + flagged[0].start(), line_start + len(line)))
        else:
            spans += [(line_start + m.start(), line_start + m.end()) for m in flagged]
    return spans


def _lines(text: str) -> Iterator[tuple[int, str]]:
    at = 0
    for line in text.split("\n"):
        yield at, line
        at += len(line) + 1


def without_instructions(text: str, mark: str = "") -> str:
    """`text` with what addresses the assistant cut out (replaced by `mark`)."""
    out, at = [], 0
    for start, end in instruction_spans(text):
        out += [text[at:start], mark]
        at = end
    out.append(text[at:])
    return "".join(out)

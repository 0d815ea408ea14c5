"""Text rules that every part of rag must agree on: what a citation mark is, where a sentence
ends, what counts as a refusal, and how tokens are counted.

The page, the checker, the API and the evals all read `[n]` marks through `CITATION` and
`cited_numbers`; if they parsed marks differently they could disagree on what an answer cites.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import tiktoken

# ---------------------------------------------------------------------------------------------
# Citation marks: "[1]", "[1, 2]", "[1; 2]", "[1-3]", "[1–3]", "[1 and 2]"

_CITE_INNER = r"\d+(?:\s*(?:[,;\-\u2013]|and)\s*\d+)*"
CITATION = re.compile(rf"\[\s*{_CITE_INNER}\s*\]")
CITATION_WITH_SPACE = re.compile(rf"\s*\[\s*{_CITE_INNER}\s*\]")
# What a mark can look like while it is still being streamed ("[", "[1", "[1, ").
_CITATION_PREFIX = re.compile(r"\[[\d\s,;\-\u2013and]*")
MAX_CITATION_CHARS = 16


def cited_numbers(text: str) -> list[int]:
    """Passage numbers cited in a text, in order of first use, without repeats.

    Ranges are expanded: "[1-3]" cites 1, 2 and 3."""
    numbers: list[int] = []
    for mark in CITATION.findall(text):
        numbers.extend(mark_numbers(mark))
    return list(dict.fromkeys(numbers))


def mark_numbers(mark: str) -> list[int]:
    """The numbers one citation mark names, in its order."""
    numbers: list[int] = []
    for part in re.split(r"\s*(?:[,;]|and)\s*", mark.strip("[] ")):
        bounds = re.split(r"\s*[\-\u2013]\s*", part.strip())
        if len(bounds) == 2 and bounds[0].isdigit() and bounds[1].isdigit():
            low, high = int(bounds[0]), int(bounds[1])
            numbers.extend(range(low, high + 1) if low <= high else [low, high])
        elif bounds[0].isdigit():
            numbers.append(int(bounds[0]))
    return numbers


def strip_citations(text: str) -> str:
    """The text without its citation marks, whitespace collapsed."""
    return " ".join(CITATION_WITH_SPACE.sub("", text).split())


def could_become_citation(held: str) -> bool:
    """True while streamed text starting with '[' may still turn out to be a citation mark."""
    return len(held) <= MAX_CITATION_CHARS and bool(_CITATION_PREFIX.fullmatch(held))


# ---------------------------------------------------------------------------------------------
# Sentences

_ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "vs", "etc", "e.g", "i.e", "u.s", "u.k",
    "u.n", "fig", "inc", "ltd", "co", "corp", "gen", "gov", "sen", "rep", "jan", "feb",
    "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
}  # fmt: skip
_NUMBER_ABBREVIATIONS = {"no", "nos", "vol", "pp", "p", "art"}
_BOUNDARY = re.compile(rf"[.!?]+[\"'\u201d\u2019)]*(?:\s*{CITATION.pattern})*(?=\s|$)")
_PREV_WORD = re.compile(r"([\w.]+)$")
# A passage sentence: up to and including its end punctuation (a decimal point is not one).
# A sentence ends at . ! ? followed by white space (or a closing quote or bracket), at the end,
# or at a line break unless the next line goes on in lower case (a hard-wrapped paragraph of a
# text file): the point in "2.7 km", "version 0.21" or "example.com" is inside it, and a line
# with no end mark (a heading, a table row, an item of an option list) is a sentence of its own.
_PASSAGE_SENTENCE = re.compile(
    r"(?:[^.!?\n]|\n(?=[ \t]*[a-z])|[.!?]+(?![\s\"'”’)]|$))+(?:[.!?]+[\"'”’)]*|(?=\n)|$)"
)


def split_sentences(answer: str) -> list[str]:
    """Split an answer into sentences, keeping each sentence's trailing citations with it.

    "A [1]. B. [2] C" gives "A [1].", "B. [2]", "C". Line breaks (bullet lists) always split;
    common abbreviations ("U.S.", "Dr.") and single initials do not, nor does a full stop
    followed by a lowercase word."""
    sentences: list[str] = []
    for line in answer.splitlines():
        start = 0
        for m in _BOUNDARY.finditer(line):
            end = m.end()
            rest = line[end:].lstrip()
            if rest and rest[0].islower():
                continue
            punct_at = m.start()
            prev = _PREV_WORD.search(line[start:punct_at])
            if line[punct_at] == "." and prev:
                word = prev.group(1).lower().rstrip(".")
                if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
                    continue
                if word in _NUMBER_ABBREVIATIONS and rest[:1].isdigit():  # "No. 3 Michigan"
                    continue
            piece = line[start:end].strip()
            if piece:
                sentences.append(piece)
            start = end
        tail = line[start:].strip()
        if tail:
            sentences.append(tail)
    return sentences


def passage_sentences(text: str) -> Iterator[re.Match[str]]:
    """The sentences of a passage as regex matches (their offsets index the passage)."""
    return _PASSAGE_SENTENCE.finditer(text)


# ---------------------------------------------------------------------------------------------
# Refusals

_DOCS = (
    r"(?:documents?|sources?|context|passages?|texts?|articles?|excerpts?|materials?|"
    r"(?:provided|given|available|retrieved) (?:documents?|information|context|sources?|passages?|"
    r"texts?|materials?)|information (?:provided|given|available))"
)
_NEG = r"(?:do|does|did)(?:\s+not|n't)"
_VERBS = (
    r"(?:say|state|mention|specify|contain|include|provide|give|cover|address|tell|indicate|"
    r"answer|discuss|describe|identify|name|explain|reveal|offer|list|report|show)"
)
_REFUSAL_PATTERNS = [
    # "The documents do not say ...", "The provided context doesn't mention ..."
    rf"\b{_DOCS}\s+{_NEG}\s+(?:\w+\s+)?{_VERBS}\b",
    # "... is not mentioned in the documents"
    rf"\bnot\s+(?:\w+\s+)?(?:mentioned|stated|specified|provided|given|found|covered|addressed|"
    rf"included|described|discussed|available|present)\s+(?:in|by)\s+(?:the\s+|these\s+|any\s+)?"
    rf"(?:\w+\s+)?{_DOCS}",
    r"\binsufficient information\b",
    r"\bnot enough information\b",
    r"\bthere(?:\s+is|'s|\s+are)\s+no\s+(?:relevant\s+|specific\s+)?"
    r"(?:information|mention|details?|data)\b",
    rf"\b{_DOCS}\s+(?:contains?|provides?|gives?|includes?|offers?|has|have)\s+no\b",
    # First person: "I cannot find this in the documents", "I don't know"
    r"\b(?:i|we)\s+(?:cannot|can't|can not|could not|couldn't|am unable to|was unable to|"
    r"are unable to|do not|don't|did not|didn't)\s+"
    r"(?:find|locate|determine|answer|tell|know|see)\b",
    r"\b(?:unable to|cannot|can't)\s+(?:answer|determine)\s+(?:this|that|the question|it)\b",
    rf"\b{_DOCS}\s+(?:are|is)\s+silent\b",
]
_REFUSAL = re.compile("|".join(f"(?:{p})" for p in _REFUSAL_PATTERNS), re.IGNORECASE)


def is_refusal_text(answer: str) -> bool:
    """True if the answer declines ("The documents do not say.", "Insufficient information.").

    The patterns need a refusal *phrase* (the documents don't say, I cannot find, insufficient
    information), so an answer that merely negates a fact ("Moscow did not accept the ceasefire
    [2]") is not a refusal."""
    text = answer.replace("\u2019", "'").replace("\u2018", "'")
    return bool(_REFUSAL.search(text))


# ---------------------------------------------------------------------------------------------
# Tokens

_encoding = tiktoken.get_encoding("cl100k_base")


def count_tokens(text: str) -> int:
    """Tokens as tiktoken's cl100k counts them (the budget unit of chunks and passages)."""
    return len(_encoding.encode(text, disallowed_special=()))


# Words as the citation check and the rankers count them: names, numbers, plain words.
WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*|\d[\d,.]*\d|\d")
STOPWORDS = frozenset(
    """
    a an the and or but if of to in on at by for with from as is are was were be been being it
    its this that these those he she they them his her their there here what which who whom
    whose when where why how do does did done has have had having not no yes so than then also
    about into over after before during said says say both each other such only own same very
    can could would should will may might must one two per via according however while
    """.split()
)


def words(text: str) -> list[str]:
    return [w.lower().strip("'’-").rstrip(".,") for w in WORD.findall(text)]

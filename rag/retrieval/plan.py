"""Planning a question's searches.

A question that names publishers ("according to TechCrunch ... as reported by The Verge") is
planned into sub-queries: one restricted to each named source, and one per claim next to it
(restricted to it, and to a date the claim names), so every needed document has a place in the
context. A plain question is its own plan. Long, entity-rich questions (MultiHop-style) are told
apart here too: keyword search ranks them far better than embeddings do.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta


@dataclass(frozen=True)
class SubQuery:
    text: str
    sources: tuple[str, ...] = ()  # restrict to documents from these publishers
    days: tuple[int, int] | None = None  # restrict to documents published in [first, last]


def content_words(text: str) -> int:
    return len(re.findall(r"[A-Za-z0-9]{3,}", text))


def is_long(question: str, long_question_words: int) -> bool:
    """A long, entity-rich question, which BM25 ranks far better than the dense retriever."""
    return content_words(question) >= long_question_words


def source_aliases(sources: list[str]) -> dict[str, tuple[str, ...]]:
    """How questions name publishers: 'The Independent - Sports' is also 'The Independent',
    'Cnbc | World Business News Leader' also 'Cnbc' / 'CNBC'."""
    aliases: dict[str, set[str]] = defaultdict(set)
    for source in sources:
        short = re.split(r"\s+[|:–-]\s+", source)[0].strip()
        for alias in {source, short, short.upper()} if len(short) >= 3 else {source}:
            aliases[alias].add(source)
    return {alias: tuple(sorted(found)) for alias, found in aliases.items()}


_MONTH_NAMES = (
    "january february march april may june july august september october november december"
)
_MONTHS = {month: number for number, month in enumerate(_MONTH_NAMES.split(), start=1)}
_DATE = re.compile(
    r"\b(" + "|".join(_MONTHS) + r")\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})\b", re.IGNORECASE
)
_CLAUSE_BREAK = re.compile(
    r",(?!\s*\d{4})\s*(?:and|but|while|whereas)?\s*|\s+(?:while|whereas|and then)\s+|;\s*"
)
MIN_CLAUSE_WORDS = 4


def date_window(text: str) -> tuple[int, int] | None:
    """'published on October 4, 2023' → (20231003, 20231005): a day either side, as publication
    times are stored in UTC and reported in local time."""
    match = _DATE.search(text)
    if not match:
        return None
    try:
        day = date(int(match.group(3)), _MONTHS[match.group(1).lower()], int(match.group(2)))
    except ValueError:
        return None
    as_int = lambda d: int(d.strftime("%Y%m%d"))  # noqa: E731
    return as_int(day - timedelta(days=1)), as_int(day + timedelta(days=1))


def clauses(text: str) -> list[str]:
    """The parts of a long multi-claim question that can stand as searches of their own."""
    parts = [p.strip(" ,.?;'\"") for p in _CLAUSE_BREAK.split(text)]
    return [p for p in parts if content_words(p) >= MIN_CLAUSE_WORDS]


def _mention_groups(
    question: str, aliases: dict[str, tuple[str, ...]]
) -> list[tuple[int, int, tuple[str, ...]]]:
    """Publisher mentions as (start, end, sources); adjacent ones ('TechCrunch, Engadget, and
    The Verge') merge into one group."""
    found: list[tuple[int, int, tuple[str, ...]]] = []
    for alias in sorted(aliases, key=len, reverse=True):
        for match in re.finditer(rf"(?<!\w){re.escape(alias)}(?!\w)", question):
            if not any(match.start() < end and start < match.end() for start, end, _ in found):
                found.append((match.start(), match.end(), aliases[alias]))
    found.sort()
    groups: list[tuple[int, int, tuple[str, ...]]] = []
    for start, end, sources in found:
        if groups and content_words(question[groups[-1][1] : start].replace("and", "")) == 0:
            first, _, previous = groups[-1]
            groups[-1] = (first, end, tuple(sorted(set(previous) | set(sources))))
        else:
            groups.append((start, end, sources))
    return groups


def plan_queries(question: str, aliases: dict[str, tuple[str, ...]]) -> list[SubQuery]:
    """The question; one search per publisher it names; and one per claim next to a publisher
    (restricted to it, and to a date the claim names). A plain question is just itself."""
    groups = _mention_groups(question, aliases)
    plan = [SubQuery(question)]
    if not groups:
        return plan
    claims: list[SubQuery] = []
    edges = [0, *(p for start, end, _ in groups for p in (start, end)), len(question)]
    segments = [question[edges[i] : edges[i + 1]] for i in range(0, len(edges), 2)]
    for index, (_, _, sources) in enumerate(groups):
        plan.append(SubQuery(question, sources))
        for segment in (segments[index], segments[index + 1]):  # claims before and after it
            for clause in clauses(segment):
                claims.append(SubQuery(clause, sources, date_window(clause)))
    return list(dict.fromkeys(plan[:1] + claims + plan[1:]))  # the whole question leads

"""Checking an answer against the passages it cites, cheaply and without another LLM call.

A citation survives only if it names a passage that was shown and that passage contains the
sentence's key facts (names and numbers, and enough of its content words). Sentences left with
no supported citation are dropped; an answer with none left becomes a refusal.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import PurePosixPath

from rag.answer.untrusted import without_instructions
from rag.events import Citation, Passage, SentenceVerdict
from rag.text import (
    CITATION,
    CITATION_WITH_SPACE,
    STOPWORDS,
    WORD,
    cited_numbers,
    could_become_citation,
    mark_numbers,
    passage_sentences,
    split_sentences,
    words,
)

# Words an instruction or explanation often starts with: capitalised there, never a name.
SENTENCE_STARTERS = frozenset(
    """
    you your we our it its this that these there they up down to in on at from with by for
    first then next after before once since until under over each every all any some most
    use run set add type call pass go create install edit open press select choose change
    make start stop see note yes no not only just simply also instead otherwise here
    between among although though because whereas despite within without through across
    against along around beyond toward towards upon unlike like
    """.split()
)
_NAME_SEPARATORS = re.compile(r"[-_.]+")
_VERDICT = re.compile(r"(yes|no)\s*[.!,]?", re.IGNORECASE)
MIN_CONTENT_OVERLAP = 0.5  # for sentences with no names or numbers to check
# Links, e-mail addresses and phone numbers an answer gives must be in a cited passage's factual
# text, character for character: a link only an injected line carries is never passed on.
_LINK = re.compile(
    r"https?://[^\s)\]>\"']+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+|\b[\w-]+(?:\.[\w-]+)*\.(?:com|net|org|"
    r"example|io|dev|info|biz)\b(?:/[^\s)\]>\"']*)?|\+?\d[\d ()-]{7,}\d"
)


def _stem(word: str) -> str:
    return word[:5] if word.isalpha() else word.replace(",", "")


# A command-line option ("-lspeex", "--comp"; PDFs may set its dashes as en dashes or minus
# signs) is a name, matched whole: as a loose word stemmed to five letters, the "-lspeexdsp" of
# one library's page supported "add -lspeex" and took its citation.
_OPTION = re.compile(r"(?<![\w\-‐‑–—−])[\-‐‑–—−]{1,2}([A-Za-z][\w\-]*)")


def _options(text: str) -> list[str]:
    return ["-" + name.lower().rstrip("-") for name in _OPTION.findall(text)]


# Capitalised, yet never a name a passage must hold: "unless I change them" echoes the user.
_PRONOUN_I = frozenset({"I", "I'm", "I've", "I'd", "I'll", "I’m", "I’ve", "I’d", "I’ll"})


def key_terms(sentence: str) -> tuple[list[list[str]], set[str]]:
    """(names and numbers that must be supported, as phrases of adjacent words, and the other
    content words)."""
    text = CITATION_WITH_SPACE.sub("", sentence)
    phrases: list[list[str]] = [[option] for option in _options(text)]
    text = _OPTION.sub(" ; ", text)  # an option is its own phrase, adjacent to no other name
    loose: set[str] = set()
    previous_end = -2
    for match in WORD.finditer(text):
        raw = match.group(0)
        if match.start() == len(text) - len(text.lstrip()) and raw.lower() in SENTENCE_STARTERS:
            raw = raw.lower()  # capitalised only because it starts the sentence
        word = raw.lower().strip("'’-").rstrip(".,")
        if word.endswith("'s") or word.endswith("’s"):
            word = word[:-2]
        if not word or word in STOPWORDS or raw in _PRONOUN_I:
            previous_end = -2
            continue
        if raw[0].isdigit() or raw[0].isupper():
            adjacent = not text[previous_end : match.start()].strip()
            if phrases and adjacent and previous_end >= 0:
                phrases[-1].append(_stem(word))
            else:
                phrases.append([_stem(word)])
            previous_end = match.end()
        else:
            previous_end = -2
            if len(word) > 3:
                loose.add(_stem(word))
    return phrases, loose


def factual_text(text: str) -> str:
    """The passage without what addresses the assistant (rag.answer.untrusted)."""
    return without_instructions(text)


def links_supported(sentence: str, passages: Sequence[Passage]) -> bool:
    """Every link, address and phone number of the sentence is in a passage's factual text."""
    found = _LINK.findall(CITATION_WITH_SPACE.sub("", sentence))
    if not found:
        return True
    factual = " ".join(factual_text(p.text) for p in passages).lower()
    return all(link.lower().rstrip(".,;:") in factual for link in found)


def terms(text: str) -> set[str]:
    return {_stem(w.removesuffix("'s").removesuffix("’s")) for w in words(text)} | set(
        _options(text)
    )


def _about(passage: Passage) -> str:
    """What the prompt shows next to the text: title, source, date (also as '31 October
    2023', so 'TechCrunch reported in October' can be checked against it) and section."""
    about = [passage.title, passage.source or "", passage.published or "", passage.section or ""]
    try:
        day = date.fromisoformat((passage.published or "")[:10])
        about.append(f"{day.day} {day:%B} {day.year}")
    except ValueError:
        pass
    return " ".join(about)


def document_name_terms(passages: Sequence[Passage]) -> set[str]:
    """The words of the passages' file names ("postgresql-15-wal-config.html"): what a manual
    is about as a whole, its product and version, which its passages seldom repeat."""
    return terms(
        " ".join(_NAME_SEPARATORS.sub(" ", PurePosixPath(p.doc_id).stem) for p in passages)
    )


def evidence_terms(passages: Sequence[Passage]) -> set[str]:
    """What the passages can support: their factual text and what the prompt shows about them."""
    return terms(" ".join(factual_text(p.text) + " " + _about(p) for p in passages))


def is_supported(sentence: str, passages: Sequence[Passage], question: str) -> bool:
    """Do these passages contain the sentence's facts?

    Names and numbers must all appear in the passages or in what the prompt shows about them
    (echoing the question's names proves nothing), or, a whole name, in the cited document's
    file name ("PostgreSQL 15" of postgresql-15-wal-config.html, which a manual's passages seldom
    repeat; "PostgreSQL 16" is not found there); other content words may come from the
    question, and must mostly be covered. (Also demanding that a sentence restating the question
    be covered by the passages refused 47% of answerable MultiHop questions, mostly correct
    yes/no answers phrased in the question's words, to catch one more seed unanswerable.)
    """
    if not links_supported(sentence, passages):
        return False
    available = evidence_terms(passages)
    asked = terms(question)
    phrases, loose = key_terms(sentence)
    document_names = document_name_terms(passages)
    for phrase in phrases:
        if set(phrase) <= document_names:  # the cited document's own name, whole
            continue
        missing = [term for term in phrase if term not in available]
        # Echoing the question's names proves nothing, but a name the question spells out in
        # full ("Sam Bankman-Fried", "Alameda Research") is found by any of its words.
        if missing and (len(missing) == len(phrase) or any(t not in asked for t in missing)):
            return False
    return bool(phrases) or _holds_content(loose, asked, available)


def _holds_content(loose: set[str], asked: set[str], available: set[str]) -> bool:
    """Are most of a sentence's content words that the question did not hold available?"""
    new_words = loose - asked
    if not new_words:
        return True
    return len(new_words & available) / len(new_words) >= MIN_CONTENT_OVERLAP


def _closest(sentence: str, passages: Sequence[Passage], question: str) -> list[int]:
    """Of passages that each support a sentence, the numbers of those that also hold most of
    its content words, if any do (else all). A name alone passes the check: "AMD" in a passage
    on calling amd_order supports "AMD implements an approximate minimum degree ordering"
    as well as the overview that says so, and the citation should name the overview."""
    _, loose = key_terms(sentence)
    asked = terms(question)
    close = [p.n for p in passages if _holds_content(loose, asked, evidence_terms([p]))]
    return close or [p.n for p in passages]


def support_share(sentence: str, passages: Sequence[Passage], question: str) -> float:
    """The share of a sentence's facts found in these passages: its names and numbers, or,
    with none, its content words the question did not already hold. Shown with each sentence
    and citation; the keep-or-drop rule is `is_supported`."""
    available = evidence_terms(passages)
    phrases, loose = key_terms(sentence)
    facts = [t for phrase in phrases for t in phrase] or sorted(loose - terms(question))
    if not facts:
        return 1.0
    return round(sum(t in available for t in facts) / len(facts), 3)


# Capitalised words that name no subject: the pronoun, and acronyms a document spells out
# ("XLFD", "CLI") that passages often leave implicit.
_NOT_A_SUBJECT = re.compile(r"^(?:I|[A-Z0-9]{2,5}s?)$")


def question_names(question: str) -> list[list[str]]:
    """The names a question is about ("the United States and Russia"), as phrases of stems;
    its first word counts only when it is a name wherever it stands (not "Under", "Since"),
    and numbers, the pronoun "I" and short acronyms do not count."""
    text = question.strip()
    first = re.match(r"[A-Z][a-z]+\b", text)
    if first and first.group(0).lower() not in terms(text[first.end() :]):
        text = text[0].lower() + text[1:]
    kept = " ".join(
        "," if _NOT_A_SUBJECT.match(raw) or raw[:1].isdigit() else raw for raw in text.split()
    )
    phrases, _ = key_terms(kept)
    return [phrase for phrase in phrases if not any(t[:1].isdigit() for t in phrase)]


# The subject check is for short, pointed questions; MultiHop-style questions name many
# publishers, dates and entities that no one cited passage holds together.
MAX_COVERED_NAMES = 2
MAX_COVERED_WORDS = 20


def is_pointed(question: str) -> bool:
    """A short question, which the subject and number checks hold to one place of the text."""
    return len(question.split()) <= MAX_COVERED_WORDS


# A name as code and configuration spell it: "in_flow_delay", "GSS_S_CONTEXT_EXPIRED",
# "kern.maxproc", "semver.truncate", "showHelpAfterError", "Makefile.am".
_CODE_NAME = re.compile(r"[A-Za-z_$][\w$]*(?:(?:\.|::|->)[A-Za-z_$][\w$]*)*")
_QUALIFIER = re.compile(r"\.|::|->")


def question_identifiers(question: str) -> list[str]:
    """The identifiers a question names (lower case): words joined by underscores, dotted or
    qualified names whose parts are words (not "e.g."), and camelCase names. A trailing
    underscore ("the amd_l_* routines") makes it a prefix."""
    found = []
    for match in _CODE_NAME.finditer(question):
        token = match.group(0)
        parts = _QUALIFIER.split(token)
        if (
            "_" in token.strip("_")
            or (len(token) > 3 and re.match(r"[a-z]+[A-Z]", token))
            or (len(parts) > 1 and all(len(part) > 1 for part in parts))
        ):
            found.append(token.lower())
    return list(dict.fromkeys(found))


def names_identifier(passages: Sequence[Passage], identifier: str) -> bool:
    """Whether the passages (their text or what the prompt shows about them) spell it out."""
    tail = "" if identifier.endswith("_") else r"(?![\w$])"
    pattern = re.compile(rf"(?<![\w$]){re.escape(identifier)}{tail}", re.IGNORECASE)
    return any(pattern.search(factual_text(p.text)) or pattern.search(_about(p)) for p in passages)


def in_context_of(cited: Sequence[Passage], shown: Sequence[Passage]) -> list[Passage]:
    """The cited passages and the shown ones that are their context: the rest of the same
    section of the same document, or the text right around them."""
    around = [(c, _continuous_with(c, shown)) for c in cited]
    return [
        p
        for p in shown
        if any(
            p.doc_id == c.doc_id and ((p.section and p.section == c.section) or p in group)
            for c, group in around
        )
    ]


def names_asked_identifiers(
    question: str, cited: Sequence[Passage], shown: Sequence[Passage]
) -> bool:
    """A short question's identifiers must each be spelt out where the answer's citations point:
    in a cited passage or its context. A manual documents many parameters alike, and "the
    default value of in_flow_delay is 100", cited to a passage on another parameter whose
    default is 100, is wrong however well its number is supported."""
    if not is_pointed(question):
        return True  # a long question joins facts of several documents, named in each
    context = in_context_of(cited, shown)
    return all(names_identifier(context, i) for i in question_identifiers(question))


def covers_question(question: str, passages: Sequence[Passage]) -> bool:
    """Unless the passages an answer cites name none of the question's subjects (a manual's
    passages seldom repeat its product's name), they must name all of them: if the question
    asks about the United States and Russia and the passages only ever name Russia and
    Ukraine, the answer is about another exchange, however well its own facts are supported.
    One word of a name is enough ("Bankman-Fried", "Sam")."""
    names = question_names(question)
    if len(names) > MAX_COVERED_NAMES or not is_pointed(question):
        return True  # a long, many-sided question joins facts of several documents
    available = evidence_terms(passages)
    found = [any(term in available for term in phrase) for phrase in names]
    return all(found) or not any(found)


# A question starting with one of these asks yes or no: its answer may restate it.
_YES_NO_OPENERS = frozenset(
    "is are was were am do does did can could should would will shall has have had may might "
    "must".split()
)
# Identifiers stay whole ("gss.h", "NIMBUS_API_KEY", "semver.truncate"), hyphens part words.
_ANSWER_WORD = re.compile(r"[A-Za-z0-9_]+(?:[.'’][A-Za-z0-9_]+)*")


def _said(text: str) -> set[str]:
    said = set()
    for token in _ANSWER_WORD.findall(CITATION_WITH_SPACE.sub("", text)):
        word = token.lower().removesuffix("'s").removesuffix("’s")
        if word in STOPWORDS:
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]  # "officials" restates "official"
        said.add(word)
    return said


def adds_to_question(answer: str, question: str) -> bool:
    """Whether an answer says anything its (short) question did not. "Istanbul [1]." to "Where
    exactly in Istanbul were the talks held?" names no place; "The Fortran routine is the
    variant of AMD that skips aggressive absorption" names no routine: the question's own words
    handed back with a citation are no answer, however well a passage supports them. A yes/no
    question, a choice ("A or B?") and a long, many-sided question (whose answer is often an
    entity it names) may be answered in their own words."""
    opener = question.split(maxsplit=1)[0].lower() if question.strip() else ""
    if opener in _YES_NO_OPENERS or re.search(r"\bor\b", question) or not is_pointed(question):
        return True
    return bool(_said(answer) - _said(question))


# Passages of one document this close (in characters) are one continuous text, cut by chunking.
CONTINUOUS_GAP = 200


def _continuous_with(passage: Passage, passages: Sequence[Passage]) -> list[Passage]:
    """The passages that form one continuous text with `passage`: itself, and those of its
    document that touch it or a passage already joined, within CONTINUOUS_GAP characters."""
    group = [passage]
    rest = [p for p in passages if p is not passage and p.doc_id == passage.doc_id]
    joined = True
    while joined:
        joined = False
        for p in list(rest):
            if any(
                p.start <= g.end + CONTINUOUS_GAP and g.start <= p.end + CONTINUOUS_GAP
                for g in group
            ):
                group.append(p)
                rest.remove(p)
                joined = True
    return group


def numbers_stand_with_names(sentence: str, passages: Sequence[Passage], question: str) -> bool:
    """A sentence that states a number and names, supported only by several passages together,
    must find each number in one continuous text that also names what the sentence is
    about (its names, counted as a question's are). "The United States and Russia will
    exchange 205 soldiers [1][2]" joins the 205 of a passage about Russia and Ukraine to the
    United States of another: each fact is in a passage, but the relation is in none. A
    long, many-sided question (MultiHop-style) joins the facts of several documents by
    design, so this holds for short questions only."""
    if not is_pointed(question):
        return True
    phrases, _ = key_terms(sentence)
    numbers = [ph for ph in phrases if all(t[:1].isdigit() for t in ph)]
    # the names it is about, as for a question: no short acronym a passage may leave implicit
    # ("5 bits are used for such frames" is about DTX frames without saying "DTX")
    names = question_names(sentence)
    for number in numbers:
        holders = [p for p in passages if set(number) <= evidence_terms([p])]
        if not any(
            all(any(t in available for t in name) for name in names)
            for available in (evidence_terms(_continuous_with(h, passages)) for h in holders)
        ):
            return False
    return True


@dataclass
class CheckedAnswer:
    text: str
    refused: bool
    cited: dict[int, list[str]]  # passage number -> answer sentences that cite it
    verdicts: list[SentenceVerdict] = field(default_factory=list)


def check_answer(
    answer: str, passages: Sequence[Passage], question: str, refusal: str
) -> CheckedAnswer:
    """Keep only sentences whose citations name shown passages that support them."""
    by_number = {p.n: p for p in passages}
    kept: list[str] = []
    cited: dict[int, list[str]] = {}
    verdicts: list[SentenceVerdict] = []
    verdict = ""  # a leading "Yes." / "No.", kept only if a supported fact follows
    for sentence in split_sentences(answer):
        numbers = [n for n in cited_numbers(sentence) if n in by_number]
        bare = re.sub(
            r"([.!?])\1+$", r"\1", CITATION_WITH_SPACE.sub("", sentence).strip()
        )  # "Inc.."
        if not bare:
            continue
        if not kept and not verdict and not numbers and _VERDICT.fullmatch(bare):
            verdict = bare[:-1] + "." if bare[-1] in ".!," else bare + "."
            continue
        supporting = _closest(
            sentence,
            [by_number[n] for n in numbers if is_supported(sentence, [by_number[n]], question)],
            question,
        )
        if (
            not supporting
            and numbers
            and is_supported(sentence, [by_number[n] for n in numbers], question)
        ):
            supporting = numbers  # the facts are spread over the cited passages together
        if not supporting:
            # Small models often forget or mistype the number of a correct, grounded claim: cite
            # the first shown passage that does contain all of the sentence's facts, if any (of
            # those, one that also holds its content words).
            supporting = _closest(
                sentence, [p for p in passages if is_supported(sentence, [p], question)], question
            )[:1]
        if not supporting:
            supporting = _covering(sentence, passages, question)
        if len(supporting) > 1 and not numbers_stand_with_names(
            sentence, [by_number[n] for n in supporting], question
        ):
            supporting = []
        share = support_share(sentence, [by_number[n] for n in supporting or numbers], question)
        if supporting and not verdict and not adds_to_question(bare, question):
            # the question's own words handed back: dropped like an unsupported claim, so the
            # sentence gate (which checks one sentence at a time) and the whole answer agree
            verdicts.append(SentenceVerdict(bare, [], share, False))
            continue
        if not supporting:
            names, _ = key_terms(sentence)
            connective = bool(kept) and not names  # a remark with no facts of its own
            if connective:
                kept.append(bare)
            verdicts.append(SentenceVerdict(bare, [], share if numbers else None, connective))
            continue
        marks = "".join(f"[{n}]" for n in supporting)
        kept.append(_place_marks(bare, marks))
        verdicts.append(SentenceVerdict(bare, list(supporting), share, True))
        for n in supporting:
            cited.setdefault(n, []).append(bare)
    cited_passages = [by_number[n] for n in cited]
    if (
        not cited
        or not covers_question(question, cited_passages)
        or not names_asked_identifiers(question, cited_passages, passages)
    ):
        return CheckedAnswer(refusal, True, {}, [replace(v, kept=False) for v in verdicts])
    text = " ".join([verdict, *kept] if verdict else kept)
    return CheckedAnswer(text, False, cited, verdicts)


def _covering(sentence: str, passages: Sequence[Passage], question: str) -> list[int]:
    """The fewest shown passages (at most three, each adding names) that together support a
    sentence whose facts come from several documents ("A reports X, while B reports Y")."""
    phrases, _ = key_terms(sentence)
    needed = {term for phrase in phrases for term in phrase}
    offered = {p.n: terms(factual_text(p.text) + " " + _about(p)) & needed for p in passages}
    chosen: list[int] = []
    while needed and len(chosen) < 3:
        best = max(offered, key=lambda n: (len(offered[n] & needed), -n), default=None)
        if best is None or not offered[best] & needed:
            break
        chosen.append(best)
        needed -= offered.pop(best)
    if chosen and is_supported(sentence, [p for p in passages if p.n in chosen], question):
        return sorted(chosen)
    return []


def _place_marks(sentence: str, marks: str) -> str:
    """Put citation marks before the sentence's final punctuation: 'A fact [1].'"""
    match = re.search(r"[.!?]+[\"'”’)]*$", sentence)
    if not match:
        return f"{sentence} {marks}"
    return f"{sentence[: match.start()].rstrip()} {marks}{sentence[match.start() :]}"


def supporting_span(passage: Passage, answer_sentences: Iterable[str]) -> tuple[int, int]:
    """Offsets (in the source document) of the passage sentence that best matches the answer."""
    target = {_stem(w) for s in answer_sentences for w in words(s) if w not in STOPWORDS}
    best, best_score = (0, len(passage.text)), -1.0
    for match in passage_sentences(passage.text):
        segment = match.group(0)
        if not segment.strip():
            continue
        terms = {_stem(w) for w in words(segment) if w not in STOPWORDS}
        score = len(terms & target) / (1 + 0.01 * len(terms))
        if score > best_score:
            start = match.start() + (len(segment) - len(segment.lstrip()))
            best, best_score = (start, match.end()), score
    return passage.start + best[0], passage.start + best[1]


def build_citations(checked: CheckedAnswer, passages: Sequence[Passage]) -> list[Citation]:
    by_number = {p.n: p for p in passages}
    citations = []
    for n in sorted(checked.cited):
        passage = by_number[n]
        start, end = supporting_span(passage, checked.cited[n])
        citations.append(
            Citation(
                n=n,
                doc_id=passage.doc_id,
                title=passage.title,
                text=passage.text,
                start=start,
                end=end,
                published=passage.published,
                chunk_start=passage.start,
                chunk_end=passage.end,
                page=passage.page_of(start),
                section=passage.section,
                support=_citation_support(checked.verdicts, n),
            )
        )
    return citations


def _citation_support(verdicts: Sequence[SentenceVerdict], n: int) -> float | None:
    shares = [v.support for v in verdicts if n in v.citations and v.support is not None]
    return round(min(shares), 3) if shares else None


def renumber(
    checked: CheckedAnswer, passages: Sequence[Passage]
) -> tuple[CheckedAnswer, list[Passage]]:
    """Number the passages 1..k in the order the answer first cites them (uncited ones after,
    in their order), and rewrite the answer's marks to match: a reader sees [1], [2], … and
    never a lone [3]."""
    answer = checked.text
    order = [n for n in cited_numbers(answer) if any(p.n == n for p in passages)]
    order += [p.n for p in passages if p.n not in order]
    new = {old: i for i, old in enumerate(order, start=1)}
    by_number = {p.n: p for p in passages}
    renumbered = [replace(by_number[old], n=new[old]) for old in order]
    cited = {new[n]: sentences for n, sentences in checked.cited.items()}
    verdicts = [replace(v, citations=[new[n] for n in v.citations]) for v in checked.verdicts]
    text = _renumbered_marks(answer, new.get)
    return CheckedAnswer(text, checked.refused, cited, verdicts), renumbered


def _renumbered_marks(text: str, new_number: Callable[[int], int | None]) -> str:
    """Each citation mark of `text` written as [a][b] with its new numbers (None: dropped); a
    mark left with none stays as it was."""

    def rewrite(match: re.Match[str]) -> str:
        numbers = [m for n in mark_numbers(match.group(0)) if (m := new_number(n)) is not None]
        return "".join(f"[{n}]" for n in dict.fromkeys(numbers)) if numbers else match.group(0)

    return CITATION.sub(rewrite, text)


class StreamNumbering:
    """Rewrites the marks of released answer text to the numbers the final answer gives them
    (`renumber`: passages numbered in the order the answer first cites them), so a mark the
    user already saw streamed does not change when the answer is final."""

    def __init__(self) -> None:
        self._numbers: dict[int, int] = {}

    def feed(self, text: str) -> str:
        return _renumbered_marks(
            text, lambda n: self._numbers.setdefault(n, len(self._numbers) + 1)
        )


class StreamingCitationFilter:
    """Passes streamed text through, holding back a `[..` until it closes, and dropping citation
    marks that name no shown passage — so an invalid number is never displayed, even briefly."""

    def __init__(self, valid: Iterable[int]) -> None:
        self.valid = set(valid)
        self._held = ""

    def feed(self, text: str) -> str:
        out: list[str] = []
        for char in text:
            if self._held:
                self._held += char
                if char == "]":
                    out.append(self._resolve(self._held))
                    self._held = ""
                elif not could_become_citation(self._held):
                    out.append(self._held)
                    self._held = ""
            elif char == "[":
                self._held = char
            else:
                out.append(char)
        return "".join(out)

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held

    def _resolve(self, mark: str) -> str:
        numbers = mark_numbers(mark)
        if not numbers:
            return mark
        kept = list(dict.fromkeys(n for n in numbers if n in self.valid))
        return "[" + ", ".join(str(n) for n in kept) + "]" if kept else ""


# A sentence is complete once its end mark (and any citation marks after it) is followed by
# white space and more text: only then can it be checked.
_SENTENCE_DONE = re.compile(r"[.!?][\"'”’)]*(?:\s*\[[\d,\s]+\])*\s+(?=[^\s\[])")


class SentenceGate:
    """Holds streamed answer text back a sentence at a time and lets a sentence through only
    once the check supports it (its citations name shown passages that hold its facts, not an
    instruction). What fails is never shown, so nothing streamed needs withdrawing; the final
    answer is the checked one. A bare "Yes." / "No." waits for the fact that follows it."""

    def __init__(
        self,
        passages: Sequence[Passage],
        question: str,
        admit: Callable[[SentenceVerdict], bool] | None = None,
    ) -> None:
        self.passages, self.question = list(passages), question
        self.admit = admit  # the verifier's say on a supported claim (rag.answer.verifier)
        self._text = ""
        self._verdict = ""

    def feed(self, text: str) -> str:
        self._text += text
        out = []
        while match := _SENTENCE_DONE.search(self._text):
            sentence, self._text = self._text[: match.end()], self._text[match.end() :]
            out.append(self._release(sentence))
        return "".join(out)

    def flush(self) -> str:
        rest, self._text = self._text, ""
        return self._release(rest) if rest.strip() else ""

    def _release(self, sentence: str) -> str:
        bare = CITATION_WITH_SPACE.sub("", sentence).strip()
        if not self._verdict and _VERDICT.fullmatch(bare):
            self._verdict = sentence
            return ""
        checked = check_answer(sentence, self.passages, self.question, "")
        if checked.refused:
            return ""
        claims = [v for v in checked.verdicts if v.kept and v.citations]
        if self.admit is not None and claims and not self.admit(claims[0]):
            return ""
        released, self._verdict = self._verdict + sentence, ""
        return released

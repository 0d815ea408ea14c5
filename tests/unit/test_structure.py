"""The section (heading path) in force at an offset: one lookup, many lookups, and the cache a
document keeps of them."""

from __future__ import annotations

import random

import pytest

from rag.ingest import LoadedDocument
from rag.ingest.structure import SECTION_SEPARATOR, Heading, Sections, section_at


def scanned(headings: list[Heading], offset: int) -> str | None:
    """The rule, as a plain scan: the headings up to the first that starts past the offset,
    each closing those at its level or deeper."""
    path: list[Heading] = []
    for heading in headings:
        if heading.start > offset:
            break
        while path and path[-1].level >= heading.level:
            path.pop()
        path.append(heading)
    return SECTION_SEPARATOR.join(h.title for h in path) or None


MANUAL = [
    Heading(0, 1, "Introduction"),
    Heading(10, 2, "Installation"),
    Heading(20, 3, "Linux"),
    Heading(30, 3, "Windows"),
    Heading(40, 2, "Configuration"),
    Heading(50, 1, "Reference"),
    Heading(60, 3, "Deep without a parent"),
]


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (-1, None),
        (0, "Introduction"),
        (9, "Introduction"),
        (10, "Introduction > Installation"),
        (25, "Introduction > Installation > Linux"),
        (30, "Introduction > Installation > Windows"),
        (45, "Introduction > Configuration"),
        (50, "Reference"),
        (10_000, "Reference > Deep without a parent"),
    ],
)
def test_the_path_in_force_at_an_offset(offset, expected):
    assert section_at(MANUAL, offset) == expected
    assert Sections(MANUAL).at(offset) == expected


def test_no_headings_no_section():
    assert Sections([]).at(0) is None
    assert section_at((), 5) is None


def test_headings_out_of_order_are_read_up_to_the_first_past_the_offset():
    # 30 is read before 20: at 25 the scan stops at 30, so "Later" is never reached
    headings = [Heading(0, 1, "A"), Heading(30, 2, "B"), Heading(20, 2, "Later")]
    assert Sections(headings).at(25) == "A"
    assert Sections(headings).at(30) == "A > Later"


def test_many_lookups_agree_with_the_scan_on_random_heading_lists():
    rng = random.Random(7)
    for _ in range(200):
        starts = [rng.randrange(0, 300) for _ in range(rng.randrange(0, 25))]
        if rng.random() < 0.7:
            starts.sort()  # what readers produce; unsorted lists must agree too
        headings = [Heading(s, rng.randrange(1, 5), rng.choice(["", "T", "U"])) for s in starts]
        sections = Sections(headings)
        for offset in range(-2, 305):
            assert sections.at(offset) == scanned(headings, offset)


def test_a_document_looks_sections_up_in_its_current_headings():
    document = LoadedDocument(
        doc_id="d", text="x" * 100, title="t", headings=(Heading(0, 1, "One"),)
    )
    assert document.section_at(50) == "One"
    document.headings = (Heading(0, 1, "One"), Heading(40, 2, "Two"))
    assert document.section_at(50) == "One > Two"
    assert document == LoadedDocument(
        doc_id="d", text="x" * 100, title="t", headings=document.headings
    )  # the kept lookup is no part of what a document is

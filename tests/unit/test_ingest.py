"""Loading, cleaning and chunking files, and how `KnowledgeBase.ingest` treats bad ones.

Real embedded Chroma with the bag-of-words FakeEmbedding: fast, no model needed.
"""

from __future__ import annotations

import random
import zipfile
from pathlib import Path

import pytest
from fakes import FakeEmbedding

from rag.ingest import MAX_TITLE_CHARS, chunk_document, clean_text, load_file, make_splitter
from rag.knowledge_base import KnowledgeBase, doc_id_for
from rag.retrieval import Retriever

PROMO = "Also read:"


@pytest.fixture
def kb(settings):
    return KnowledgeBase(settings, FakeEmbedding())


def seed_file(seed_dir: Path) -> Path:
    (path,) = seed_dir.iterdir()
    return path


def snapshot(kb: KnowledgeBase) -> tuple:
    """Everything an ingest could change: documents, chunk count and chunk ids."""
    ids = kb.chunks.get(include=[])["ids"]
    return kb.documents(), kb.chunks.count(), sorted(ids)


def stored_chunks(kb: KnowledgeBase, doc_id: str):
    return [n for n in kb.all_nodes() if n.metadata["doc_id"] == doc_id]


def candidates(retriever: Retriever, query: str):
    result = retriever.retrieve(query)
    return getattr(result, "candidates", result)


# ------------------------------------------------------------------------- cleaning


def test_seed_date_header_becomes_published_and_leaves_the_text(seed_dir):
    raw = seed_file(seed_dir).read_text()
    assert raw.lstrip().startswith("date 2025-05-23")
    document = load_file(seed_file(seed_dir))
    assert document.published == "2025-05-23"
    assert document.text.startswith("US President Donald Trump on Friday (May 23)")
    assert "2025-05-23" not in document.text


def test_promo_lines_are_dropped_from_text_and_every_chunk(seed_dir, kb):
    path = seed_file(seed_dir)
    assert path.read_text().count(PROMO) == 2  # the seed has them; cleaning must remove them
    document = load_file(path)
    assert "also read" not in document.text.lower()
    assert "PR stunt" not in document.text  # the advertised headline went with its line
    assert "1,000 prisoners listed for exchange" in document.text  # real content stays

    kb.ingest([path])
    chunks = stored_chunks(kb, doc_id_for(path))
    assert len(chunks) > 3
    for chunk in chunks:
        assert "also read" not in chunk.get_content(metadata_mode="all").lower()
        assert "PR stunt" not in chunk.get_content(metadata_mode="all")


def test_all_promo_variants_are_dropped_but_prose_mentioning_them_is_kept():
    raw = (
        "date 2024-01-02\r\nHeadline about okapis.\r\n"
        "ALSO READ: Giraffes are tall\n"
        "  Read more - Ten facts about zebras\n"
        "See also | The rainforest\n"
        "Related: Something else\n"
        "You may also like: Gadgets\n"
        "Okapis are related to giraffes, and you should also read the field guide.\n"
        "The\u00a0okapi   eats leaves.\n\n\n\nIt lives in Congo."
    )
    text, published = clean_text(raw)
    assert published == "2024-01-02"
    assert text == (
        "Headline about okapis.\n"
        "Okapis are related to giraffes, and you should also read the field guide.\n"
        "The okapi eats leaves.\n\n"
        "It lives in Congo."
    )


def test_date_is_only_lifted_from_the_header():
    text, published = clean_text("The meeting on date 2024-05-06 was short.")
    assert published is None
    assert text == "The meeting on date 2024-05-06 was short."


def test_chunk_offsets_index_the_cleaned_text_exactly(seed_dir, kb, tmp_path):
    messy = tmp_path / "messy.txt"
    messy.write_text(
        "date 2023-03-04\r\n  Okapi field notes.  \r\n\r\n\r\n"
        + "".join(
            f"Paragraph {i}: the okapi\u00a0 walked   {i} kilometres through the Ituri forest "
            f"and ate {i * 3} leaves before resting.\r\n"
            + ("Also read: Unrelated promo headline\r\n" if i % 3 == 0 else "")
            + "\r\n"
            for i in range(30)
        )
    )
    report = kb.ingest([seed_file(seed_dir), messy])
    assert report.errors == [] and len(report.added) == 2
    for info in kb.documents():
        text = kb.document_text(info.doc_id)
        chunks = sorted(stored_chunks(kb, info.doc_id), key=lambda n: n.metadata["chunk_index"])
        assert len(chunks) == info.chunks > 1
        for chunk in chunks:  # read back from Chroma, offsets and all
            assert text[chunk.start_char_idx : chunk.end_char_idx] == chunk.text
        # in order, covering the document from its first to its last character
        assert chunks[0].start_char_idx == 0
        assert chunks[-1].end_char_idx == len(text)
        starts = [c.start_char_idx for c in chunks]
        assert starts == sorted(starts)
    assert "Unrelated promo" not in kb.document_text(doc_id_for(messy))


def test_chunks_are_token_bounded(seed_dir):
    import tiktoken

    encoding = tiktoken.get_encoding("cl100k_base")
    document = load_file(seed_file(seed_dir))
    for size in (32, 64, 128):
        nodes = chunk_document(document, make_splitter(size, 8))
        assert all(len(encoding.encode(n.text)) <= size for n in nodes)
        assert all(document.text[n.start_char_idx : n.end_char_idx] == n.text for n in nodes)


def test_derived_title_is_the_first_sentence_cut_at_a_word(seed_dir, tmp_path):
    document = load_file(seed_file(seed_dir))
    assert document.title_from_text
    assert document.title.endswith("…")
    assert len(document.title) <= MAX_TITLE_CHARS + 1
    assert document.text.startswith(document.title[:-1])
    assert document.text[len(document.title) - 1] == " "  # cut between words
    assert "date" not in document.title

    short = tmp_path / "short.txt"
    short.write_text("\n\n  Okapis are shy.  They live in Congo.\nMore text.")
    assert load_file(short).title == "Okapis are shy."


# ------------------------------------------------------------------------- bad files

BAD_FILES = {
    "empty.txt": (b"", ["empty"]),
    "blank.md": (b" \n\n\t \n", ["empty"]),
    "binary.txt": (b"PK\x03\x04\x14\x00\x00\x00binary\x00payload" * 20, ["binary", "NUL"]),
    "latin1.txt": ("Café crème at the Élysée, naïve façade.".encode("latin-1"), ["UTF-8"]),
    "program.exe": (b"MZ\x90\x00\x03\x00\x00\x00" * 8, ["unsupported", ".exe"]),
    "notes.xyz": (b"Perfectly readable words in an unknown format.", ["unsupported", ".xyz"]),
    "broken.pdf": (random.Random(7).randbytes(3000), ["PDF", "cannot be read"]),
    "truncated.pdf": (b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog", ["PDF", "cannot be read"]),
    "broken.docx": (random.Random(8).randbytes(800), ["DOCX", "cannot be read"]),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_file_is_one_clear_error_and_changes_nothing(name, kb, seed_dir, tmp_path):
    kb.ingest([seed_dir])
    before = snapshot(kb)
    content, words = BAD_FILES[name]
    folder = tmp_path / "incoming"
    folder.mkdir()
    bad = folder / name
    bad.write_bytes(content)

    report = kb.ingest([bad])
    assert [e.path for e in report.errors] == [str(bad)]
    message = report.errors[0].message
    assert name in message
    for word in words:
        assert word.lower() in message.lower(), message
    assert "Traceback" not in message and "RetryError" not in message
    assert report.added == report.updated == [] and report.chunks == 0
    assert snapshot(kb) == before

    # the good file of the same batch still goes in; only it is added
    good = folder / "okapi.txt"
    good.write_text("Okapis live in the Ituri rainforest and eat leaves.")
    report = kb.ingest([bad, good, seed_dir])
    assert [e.path for e in report.errors] == [str(bad)]
    assert report.added == [doc_id_for(good)]
    assert report.unchanged == [doc_id_for(seed_file(seed_dir))]
    documents, count, ids = snapshot(kb)
    assert [d.doc_id for d in documents] == sorted(
        [doc_id_for(good), doc_id_for(seed_file(seed_dir))]
    )
    new_ids = set(ids) - set(before[2])
    assert set(before[2]) <= set(ids)
    assert new_ids == {n.node_id for n in stored_chunks(kb, doc_id_for(good))}
    assert count == before[1] + len(new_ids)


def test_folder_ingest_skips_unsupported_and_hidden_files(kb, tmp_path):
    folder = tmp_path / "mixed"
    (folder / ".git").mkdir(parents=True)
    (folder / "keep.txt").write_text("Okapis are shy forest animals.")
    (folder / "program.exe").write_bytes(b"MZ\x90\x00")
    (folder / ".hidden.txt").write_text("Hidden notes.")
    (folder / ".git" / "HEAD.txt").write_text("ref: refs/heads/main")
    report = kb.ingest([folder])
    assert report.errors == []
    assert [d.doc_id for d in kb.documents()] == [doc_id_for(folder / "keep.txt")]


def test_a_good_document_whose_file_turns_bad_stays_as_it_was(kb, tmp_path):
    path = tmp_path / "okapi.txt"
    path.write_text("Okapis live in the Ituri rainforest and eat leaves.")
    kb.ingest([path])
    before = snapshot(kb)
    path.write_bytes("Okapis live in the forêt.".encode("latin-1"))
    report = kb.ingest([path])
    assert len(report.errors) == 1 and "UTF-8" in report.errors[0].message
    assert snapshot(kb) == before
    assert "Ituri" in kb.document_text(doc_id_for(path))


# ------------------------------------------------------------------------- real formats


def minimal_docx(path: Path, paragraphs: list[str]) -> None:
    w = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    body = "".join(f"<w:p><w:r><w:t>{p}</w:t></w:r></w:p>" for p in paragraphs)
    with zipfile.ZipFile(path, "w") as docx:
        docx.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" '
            'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/word/document.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>',
        )
        docx.writestr(
            "_rels/.rels",
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
            'relationships/officeDocument" Target="word/document.xml"/></Relationships>',
        )
        docx.writestr(
            "word/document.xml",
            f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            f'<w:document xmlns:w="{w}"><w:body>{body}</w:body></w:document>',
        )


def minimal_pdf(path: Path, lines: list[str]) -> None:
    """A one-page PDF with real text (Helvetica), xref offsets computed."""
    ops = " ".join(f"({line}) Tj 0 -16 Td" for line in lines)
    content = f"BT /F1 12 Tf 72 720 Td {ops} ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    path.write_bytes(bytes(out))


def test_real_formats_ingest_and_are_searchable(kb, settings, tmp_path):
    folder = tmp_path / "formats"
    folder.mkdir()
    minimal_docx(
        folder / "axolotl.docx",
        ["Axolotls regenerate lost limbs within weeks.", "They live in Lake Xochimilco."],
    )
    minimal_pdf(
        folder / "narwhal.pdf",
        ["The narwhal tusk is an elongated canine tooth.", "Narwhals dive in Baffin Bay."],
    )
    (folder / "zebra.html").write_text(
        "<html><head><title>Zebra Facts</title><script>var tracking = 1;</script></head>"
        "<body><h1>Zebras</h1><p>Zebra stripes are unique like fingerprints.</p>"
        "<p>Zebras graze on the Serengeti savanna.</p></body></html>"
    )
    (folder / "okapi.md").write_text(
        "# Okapi notes\n\nThe okapi is a giraffid native to the Ituri rainforest.\n"
    )

    report = kb.ingest([folder])
    assert report.errors == []
    assert sorted(report.added) == sorted(doc_id_for(p) for p in folder.iterdir())
    titles = {Path(d.doc_id).name: d.title for d in kb.documents()}
    assert titles["zebra.html"] == "Zebra Facts"
    assert "Axolotls regenerate lost limbs" in titles["axolotl.docx"]
    assert "narwhal tusk" in titles["narwhal.pdf"]
    assert "Okapi notes" in titles["okapi.md"]

    texts = {Path(d.doc_id).name: kb.document_text(d.doc_id) for d in kb.documents()}
    assert "Lake Xochimilco" in texts["axolotl.docx"]
    assert "Baffin Bay" in texts["narwhal.pdf"]
    assert "Serengeti savanna" in texts["zebra.html"] and "tracking" not in texts["zebra.html"]
    assert "Ituri rainforest" in texts["okapi.md"]

    retriever = Retriever(settings, kb)
    for query, name, words in [
        ("Where do axolotls live? Lake Xochimilco", "axolotl.docx", "Xochimilco"),
        ("narwhal tusk canine tooth", "narwhal.pdf", "canine tooth"),
        ("zebra stripes fingerprints", "zebra.html", "fingerprints"),
        ("okapi giraffid Ituri rainforest", "okapi.md", "giraffid"),
    ]:
        top = candidates(retriever, query)[0].node.node
        assert Path(top.metadata["doc_id"]).name == name, query
        assert words in top.get_content(metadata_mode="none")


def test_overstruck_bold_and_underline_read_as_plain_letters():
    from rag.ingest.clean import clean_text

    raw = "T\bTu\bun\bni\bin\bng\bg _\bg_\bu_\bi_\bd_\be\n\nThe queue manager runs."
    assert clean_text(raw)[0] == "Tuning guide\n\nThe queue manager runs."


def test_pdf_outline_titles_are_found_on_their_page_whatever_the_typography():
    from rag.ingest.pdf import heading_offsets

    pages = [
        "Contents\n1 Intro 1\n",
        "Some text.\n4.2 Using Automake’s rules\nMore text.\nSee the command options\n",
        "Preface.\n1.1 LATEX 2ε  classes\nBody.\n",
    ]
    starts = [0, 100, 200]
    outline = [(1, 2, "Using Automake's rules"), (1, 2, "Options"), (2, 2, "LaTeX2ε classes")]
    found = {h.title: h.start for h in heading_offsets(pages, starts, outline)}
    assert found["4.2 Using Automake’s rules"] == 100 + pages[1].index("4.2")
    assert found["1.1 LATEX 2ε  classes"] == 200 + pages[2].index("1.1")
    assert found["Options"] == 100  # not the sentence that ends with the word: the page start


def test_a_large_document_chunked_in_pieces_keeps_ids_pages_and_sections(monkeypatch):
    """Ids run on across pieces from the document's content hash, taken once (it hashes the
    whole text); every chunk has the page and section of its first character."""
    from rag.ingest import LoadedDocument, chunk_id, chunking
    from rag.ingest.structure import Heading, page_at, section_at

    class CountedHash(LoadedDocument):
        reads = 0

        @property
        def content_hash(self) -> str:
            CountedHash.reads += 1
            return super().content_hash

    pieces = chunking.text_pieces
    monkeypatch.setattr(chunking, "LARGE_TEXT_CHARS", 3_000)
    monkeypatch.setattr(chunking, "text_pieces", lambda text: pieces(text, 2_000))
    paragraphs = [
        f"Paragraph {i} says the okapi walked {i} kilometres through the Ituri forest."
        for i in range(120)
    ]
    text = "\n\n".join(paragraphs)
    starts = [text.index(p) for p in paragraphs]
    document = CountedHash(
        doc_id="docs/okapi.pdf",
        text=text,
        title="Okapi",
        pages=tuple(starts[::10]),
        headings=(Heading(0, 1, "Field notes"), *(Heading(s, 2, f"Day {s}") for s in starts[::25])),
    )
    expected_hash = LoadedDocument.content_hash.fget(document)
    nodes = chunk_document(document, make_splitter(32, 4))
    assert len(nodes) > 20 and len(pieces(text, 2_000)) > 3
    assert CountedHash.reads == 1
    assert [n.id_ for n in nodes] == [
        chunk_id(document.doc_id, expected_hash, i) for i in range(len(nodes))
    ]
    for index, node in enumerate(nodes):
        start = node.start_char_idx
        assert text[start : node.end_char_idx] == node.text
        assert node.metadata["chunk_index"] == index
        assert node.metadata["content_hash"] == expected_hash
        assert node.metadata["page"] == page_at(document.pages, start)
        assert node.metadata["section"] == section_at(document.headings, start)
    assert {n.metadata["page"] for n in nodes} == set(range(1, 13))
    assert nodes[-1].metadata["section"] == f"Field notes > Day {starts[100]}"

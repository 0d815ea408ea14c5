"""Query planning and rank merging: pure functions, hand-checked."""

from __future__ import annotations

import pytest
from fakes import ByFeature
from llama_index.core.schema import NodeWithScore, TextNode

from rag.retrieval import Retriever, SubQuery
from rag.retrieval.first_stage import dense_weight
from rag.retrieval.fusion import fuse, interleave
from rag.retrieval.keyword import build_sections
from rag.retrieval.plan import clauses, date_window, is_long, plan_queries, source_aliases

SOURCES = [
    "TechCrunch",
    "The Verge",
    "The Independent - Sports",
    "The Independent - Travel",
    "Cnbc | World Business News Leader",
    "The Age",
]


def hit(chunk: str, doc: str, score: float = 1.0) -> NodeWithScore:
    return NodeWithScore(
        node=TextNode(id_=chunk, text=chunk, metadata={"doc_id": doc}), score=score
    )


def test_aliases_cover_short_names_and_group_sections():
    aliases = source_aliases(SOURCES)
    assert aliases["The Independent"] == ("The Independent - Sports", "The Independent - Travel")
    assert aliases["CNBC"] == ("Cnbc | World Business News Leader",)
    assert aliases["The Verge"] == ("The Verge",)


def test_plan_searches_each_publisher_and_each_claim_next_to_it():
    question = (
        "Was the company accused of hiding evidence in court, according to TechCrunch, "
        "and did The Verge report on December 12, 2023 that it lost the antitrust trial?"
    )
    plan = plan_queries(question, source_aliases(SOURCES))
    assert SubQuery(question) in plan
    assert (
        SubQuery(question, ("TechCrunch",)) in plan and SubQuery(question, ("The Verge",)) in plan
    )
    claim = SubQuery("Was the company accused of hiding evidence in court", ("TechCrunch",))
    assert claim in plan
    dated = [q for q in plan if q.sources == ("The Verge",) and q.days]
    assert dated and dated[0].days == (20231211, 20231213)
    assert "lost the antitrust trial" in dated[0].text
    # the whole question leads (its best hits rank first), then the claims, then the sources
    assert plan[0] == SubQuery(question)
    assert plan.index(claim) < plan.index(SubQuery(question, ("TechCrunch",)))


def test_adjacent_publishers_form_one_group():
    question = (
        "Which company makes the Vision Pro headset, as reported by TechCrunch, and The Verge?"
    )
    plan = plan_queries(question, source_aliases(SOURCES))
    assert (
        SubQuery("Which company makes the Vision Pro headset", ("TechCrunch", "The Verge")) in plan
    )


def test_date_window_and_clauses():
    assert date_window("published on October 4, 2023") == (20231003, 20231005)
    assert date_window("in the autumn") is None
    assert clauses("a claim about four things, and another claim about more things") == [
        "a claim about four things",
        "another claim about more things",
    ]


def test_plan_for_a_plain_question_is_the_question():
    question = "What is the age of the universe?"  # 'age' is not the publisher 'The Age'
    assert plan_queries(question, source_aliases(SOURCES)) == [SubQuery(question)]


def test_fuse_rewards_agreement_between_dense_and_keyword():
    dense = [hit("a", "d1", 0.9), hit("b", "d1", 0.7)]
    keyword = [hit("b", "d1", 3.5), hit("c", "d2", 1.0)]
    fused = fuse(dense, keyword)
    assert [c.chunk_id for c in fused] == ["b", "a", "c"]
    # dense hits are scored by cosine similarity, which the candidate keeps as is
    assert fused[0].keyword_score == 3.5 and fused[0].dense_similarity == 0.7
    assert fused[1].dense_similarity == 0.9 and fused[1].keyword_score is None
    assert fused[2].dense_similarity is None and fused[2].keyword_score == 1.0
    # weighted reciprocal ranks: b is 2nd dense and 1st keyword
    assert fused[0].score == pytest.approx(1 / 62 + 1 / 61)
    assert fuse(dense, keyword, dense_weight=0.0)[0].chunk_id == "b"
    assert [c.chunk_id for c in fuse(dense, keyword, keyword_weight=0.0)][:2] == ["a", "b"]


def test_interleave_round_robins_and_caps_chunks_per_document():
    first = fuse([hit("a1", "A"), hit("a2", "A"), hit("a3", "A")], [])
    second = fuse([hit("b1", "B"), hit("a1", "A")], [])
    merged = [c.chunk_id for c in interleave([first, second])]
    assert merged == ["a1", "b1", "a2", "a3"]  # a3 deferred behind B, a1 not repeated


def test_long_entity_rich_questions_lean_on_keywords(settings):
    short = "Who led Russia's delegation?"
    long = (
        "Does the TechCrunch article about the antitrust trial suggest that Google paid billions "
        "to Apple for default search placement, while The Verge reports that Epic Games won "
        "its case against Google in December?"
    )
    assert not is_long(short, settings.long_question_words)
    assert is_long(long, settings.long_question_words)
    assert dense_weight(short, settings) == settings.dense_weight == 1.0
    assert dense_weight(long, settings) == settings.long_question_dense_weight < 0.1


def test_masks_admit_only_the_named_sources_and_days(settings):
    from fakes import FakeEmbedding, add_news

    from rag.knowledge_base import KnowledgeBase

    kb = KnowledgeBase(settings, FakeEmbedding())
    add_news(
        kb,
        [
            ("a", "TechCrunch", "2023-10-04", "Google paid billions for search defaults."),
            ("b", "The Verge", "2023-10-04", "Google paid billions for search defaults, again."),
            ("c", "TechCrunch", "2023-12-12", "Google lost the antitrust trial against Epic."),
        ],
    )
    sections = Retriever(settings, kb).keyword_indexes().sections
    found = lambda sub: {h.node.metadata["doc_id"] for h in sections.search(sub, 10)}  # noqa: E731
    assert found(SubQuery("paid billions")) == {"a", "b"}
    assert found(SubQuery("paid billions", ("TechCrunch",))) == {"a"}
    assert found(SubQuery("Google", ("TechCrunch",), (20231211, 20231213))) == {"c"}
    assert found(SubQuery("the of and")) == set()  # only stopwords: nothing, no error


def _chunked_kb(settings, text: str, **doc):
    from fakes import FakeEmbedding

    from rag.knowledge_base import KnowledgeBase
    from rag_eval.data import corpus_document

    settings.chunk_size, settings.chunk_overlap, settings.section_chunks = 16, 0, 3
    kb = KnowledgeBase(settings, FakeEmbedding())
    kb.add_documents([corpus_document({"doc_id": "d", "text": text, **doc})])
    return kb


SENTENCES = [
    "The harbour bridge opened in March after four years of work.",
    "Engineers tested the cables with heavy trucks before the opening.",
    "The mayor said tolls will fund the maintenance of the bridge.",
    "A ferry service that crossed the harbour stopped the same week.",
    "Local shops near the old ferry pier reported fewer customers.",
    "Cyclists asked for a separate lane, which the council refused.",
    "The council plans a second bridge to the north by 2030.",
]


def test_sections_are_consecutive_chunks_cut_from_the_document_text(settings):
    kb = _chunked_kb(
        settings,
        " ".join(SENTENCES),
        title="Harbour bridge",
        source="Daily",
        published_at="2024-03-02",
    )
    nodes = sorted(kb.all_nodes(), key=lambda n: n.metadata["chunk_index"])
    text = kb.document_text("d")
    sections = build_sections(nodes, {"d": text}, size=3)
    assert len(nodes) > 3 and len(sections) == -(-len(nodes) // 3)
    for number, section in enumerate(sections):
        members = section.metadata["chunk_ids"].split()
        assert members == [n.node_id for n in nodes[number * 3 : number * 3 + 3]]
        assert (
            section.text
            == text[
                nodes[number * 3].start_char_idx : nodes[number * 3 + len(members) - 1].end_char_idx
            ]
        )
        # keyword search sees title, source and date; bookkeeping stays out
        searchable = section.get_content(metadata_mode="embed")
        assert (
            "Harbour bridge" in searchable and "Daily" in searchable and "2024-03-02" in searchable
        )
        assert "chunk_ids" not in searchable and "doc_id" not in searchable
    # chunks are embedded as bare text
    assert nodes[0].get_content(metadata_mode="embed") == nodes[0].text


def test_a_long_question_ranks_sections_each_bringing_its_best_chunk(settings):
    kb = _chunked_kb(settings, " ".join(SENTENCES))
    retriever = Retriever(settings, kb)
    question = (
        "After the harbour bridge opened and the ferry service across the harbour stopped, "
        "which request about a separate lane did the cyclists make, and why did the council "
        "refuse that request from the cyclists?"
    )
    assert is_long(question, settings.long_question_words)
    retrieval = retriever.retrieve(question)
    top = retrieval.candidates[0]
    assert "Cyclists asked for a separate lane" in top.node.node.text
    assert top.node.node.node_id in top.section.metadata["chunk_ids"].split()
    assert top.node.node.text in top.unit_text and len(top.unit_text) > len(top.node.node.text)
    keys = [c.key for c in retrieval.candidates]
    assert len(keys) == len(set(keys))  # each section once


def test_a_short_question_ranks_chunks(settings):
    kb = _chunked_kb(settings, " ".join(SENTENCES))
    retrieval = Retriever(settings, kb).retrieve("Why did the council refuse a cycling lane?")
    top = retrieval.candidates[0]
    assert top.section is None and top.key == top.chunk_id
    assert "Cyclists asked for a separate lane" in top.unit_text


LONG_BRIDGE_QUESTION = (
    "After the harbour bridge opened and the ferry service across the harbour stopped, which "
    "request about a separate lane did the cyclists make, and why did the council refuse it?"
)


def test_the_learned_ranking_orders_the_pool_and_adds_the_articles_other_sections(settings):
    kb = _chunked_kb(settings, " ".join(SENTENCES))
    later_first = ByFeature("position_in_article")  # an article's last sections first
    settings.rerank_pool, settings.rerank_expand_docs = 2, 1
    retriever = Retriever(settings, kb, reranker=later_first)
    indexes = retriever.keyword_indexes()
    article = [indexes.sections.node(row).node_id for row in indexes.article_sections["d"]]
    first = [c.key for c in retriever.first_stage(LONG_BRIDGE_QUESTION).candidates]
    assert len(article) == 3 and first[:2] == [article[1], article[0]]
    retrieval = retriever.retrieve(LONG_BRIDGE_QUESTION)
    # the pool is the first two and, from the best article, the section the pool lacked; the
    # model rewards an article's last sections, so that one leads
    assert [c.key for c in retrieval.candidates] == [article[2], article[1], article[0]]
    for candidate in retrieval.candidates:  # each shows one of its own chunks
        assert candidate.chunk_id in candidate.section.metadata["chunk_ids"].split()
        assert candidate.node.node.text in candidate.unit_text
    # the ranked ones carry their shown chunk's cosine with the question, for the relevance gate
    assert all(c.dense_similarity is not None for c in retrieval.candidates[:2])
    # no article added: the last section is not pooled, so it cannot be lifted; it follows
    settings.rerank_expand_docs = 0
    retrieval = Retriever(settings, kb, reranker=later_first).retrieve(LONG_BRIDGE_QUESTION)
    assert [c.key for c in retrieval.candidates] == [article[1], article[0], article[2]]
    settings.rerank_expand_docs = 1
    earlier_first = ByFeature("position_in_article", -1.0)
    retrieval = Retriever(settings, kb, reranker=earlier_first).retrieve(LONG_BRIDGE_QUESTION)
    assert [c.key for c in retrieval.candidates] == article


def test_without_the_learned_ranking_the_first_stage_order_stands(settings):
    kb = _chunked_kb(settings, " ".join(SENTENCES))
    settings.rerank_pool = 0
    retriever = Retriever(settings, kb, reranker=ByFeature("position_in_article"))
    first = retriever.first_stage(LONG_BRIDGE_QUESTION)
    retrieval = retriever.retrieve(LONG_BRIDGE_QUESTION)
    assert [c.key for c in retrieval.candidates] == [c.key for c in first.candidates]
    assert "Cyclists asked for a separate lane" in retrieval.candidates[0].unit_text


def test_keyword_index_parses_each_entry_once_and_keeps_a_bounded_number(settings, monkeypatch):
    import rag.retrieval.keyword as keyword_module

    kb = _chunked_kb(settings, " ".join(SENTENCES))
    retriever = Retriever(settings, kb)
    chunks = retriever.keyword_indexes().chunks
    assert chunks.node(0) is chunks.node(0)  # parsed once
    monkeypatch.setattr(keyword_module, "MAX_CACHED_NODES", 2)
    rows = range(min(5, len(chunks.ids)))
    assert [chunks.node(row).node_id for row in rows] == [chunks.ids[row] for row in rows]
    assert len(chunks._nodes) <= 2


def test_building_and_loading_keyword_indexes_prints_no_progress_bars(settings, capfd):
    kb = _chunked_kb(settings, " ".join(SENTENCES))
    Retriever(settings, kb).keyword_indexes()  # built and persisted
    Retriever(settings, kb).keyword_indexes()  # loaded from disk
    err = capfd.readouterr().err
    assert "Finding newlines" not in err and "%|" not in err


MANUAL = """# Write-ahead log

## wal_log_hints

When this parameter is on, the server writes the entire content of each disk page to the log
during the first modification of that page after a checkpoint, even for non-critical
modifications of so-called hint bits. It can only be set at server start.

## fsync

If this parameter is on, the server tries to make sure that updates are physically written
to disk, by issuing system calls. This ensures that the database cluster can recover.
"""


def _manual_kb(settings, tmp_path):
    from fakes import FakeEmbedding

    from rag.knowledge_base import KnowledgeBase

    settings.chunk_size, settings.chunk_overlap, settings.section_chunks = 24, 0, 3
    manual = tmp_path / "wal.md"
    manual.write_text(MANUAL, encoding="utf-8")
    kb = KnowledgeBase(settings, FakeEmbedding())
    kb.ingest([manual])
    return kb


def test_keyword_search_reads_a_chunks_section_path(settings, tmp_path):
    """A chunk deep in a section is found by the term only its heading holds; what it shows
    is still its own text."""
    kb = _manual_kb(settings, tmp_path)
    chunks = Retriever(settings, kb).keyword_indexes().chunks
    under = [
        row
        for row in range(len(chunks.ids))
        if chunks.node(row).metadata.get("section", "").endswith("wal_log_hints")
    ]
    later = [row for row in under if "## wal_log_hints" not in chunks.node(row).text]
    assert later, "the section should run over more than one chunk"
    scores = chunks.scores(SubQuery("wal_log_hints"))
    assert all(scores[row] > 0 for row in under)
    fsync = [
        row for row in range(len(chunks.ids)) if "fsync" in chunks.node(row).metadata["section"]
    ]
    assert fsync and not any(scores[row] > 0 for row in fsync)
    stored = {node.node_id: node.text for node in kb.all_nodes()}
    assert all(chunks.node(row).text == stored[chunks.ids[row]] for row in range(len(chunks.ids)))


def test_a_chunk_without_a_section_is_read_as_the_embedder_reads_it(settings):
    from rag.retrieval.keyword import chunk_keyword_text

    kb = _chunked_kb(settings, " ".join(SENTENCES), title="Harbour bridge", source="Daily")
    for node in kb.all_nodes():
        assert chunk_keyword_text(node) == node.get_content(metadata_mode="embed") == node.text


def test_an_index_persisted_with_another_keyword_schema_is_rebuilt(settings, monkeypatch):
    """What an index reads is part of its key: a user's index built before a change of it is
    rebuilt, not silently kept."""
    import rag.retrieval.keyword as keyword_module

    kb = _chunked_kb(settings, " ".join(SENTENCES))
    monkeypatch.setattr(keyword_module, "KEYWORD_SCHEMA", 1)
    Retriever(settings, kb).keyword_indexes()
    (old,) = (settings.data_dir / "bm25").iterdir()
    monkeypatch.setattr(keyword_module, "KEYWORD_SCHEMA", 2)
    built = []
    real_build = keyword_module.bm25_retriever
    monkeypatch.setattr(
        keyword_module, "bm25_retriever", lambda *a: built.append(1) or real_build(*a)
    )
    Retriever(settings, kb).keyword_indexes()
    assert built, "the index was loaded from the older version instead of rebuilt"
    assert [p.name for p in (settings.data_dir / "bm25").iterdir()] != [old.name]
    assert not old.exists()  # the older version is removed


def test_replacing_a_keyword_index_keeps_another_collections_whose_name_extends_it(tmp_path):
    """Only older versions of the same collection go: "docs-old" is not a version of "docs"."""
    from rag.retrieval.keyword import index_folder, older_versions

    current = index_folder(tmp_path, "docs", "0123456789abcdef")
    older = index_folder(tmp_path, "docs", "fedcba9876543210")
    before_schemas = tmp_path / "bm25" / "docs-00000000aaaaaaaa"
    neighbour = index_folder(tmp_path, "docs-old", "0123456789abcdef")
    for folder in (current, older, before_schemas, neighbour):
        folder.mkdir(parents=True)
    assert sorted(older_versions(current)) == sorted([older, before_schemas])
    assert older_versions(neighbour) == []

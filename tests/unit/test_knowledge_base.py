"""The knowledge base over embedded Chroma: idempotent ingest, updates, removal, settings checks,
reindexing and recovery from an interrupted write. FakeEmbedding keeps it fast."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from fakes import FakeEmbedding, add_news

from rag.config import Settings
from rag.knowledge_base import IndexMismatchError, KnowledgeBase, doc_id_for

OKAPI = "Okapis live in the Ituri rainforest of Congo. They eat leaves, fruit and fungi."


@pytest.fixture
def kb(settings):
    return KnowledgeBase(settings, FakeEmbedding())


def chunk_ids(kb: KnowledgeBase, doc_id: str | None = None) -> list[str]:
    """Ids of all chunks, or of one document's (by the node's own metadata, not a query)."""
    if doc_id is None:
        return sorted(kb.chunks.get(include=[])["ids"])
    return sorted(n.node_id for n in kb.all_nodes() if n.metadata["doc_id"] == doc_id)


@pytest.fixture
def seed(seed_dir: Path) -> Path:
    """The seed document (taken before a test adds files next to it)."""
    (path,) = seed_dir.iterdir()
    return path


def fresh_ingest(tmp_path: Path, paths: list[Path], **overrides) -> KnowledgeBase:
    """The same files ingested into a brand-new data dir: the state an update must equal."""
    settings = Settings(data_dir=tmp_path / "fresh", _env_file=None, **overrides)
    shutil.rmtree(settings.data_dir, ignore_errors=True)
    fresh = KnowledgeBase(settings, FakeEmbedding())
    assert fresh.ingest(paths).errors == []
    return fresh


def test_ingesting_twice_changes_nothing(kb, settings, seed_dir, seed):
    doc_id = doc_id_for(seed)
    first = kb.ingest([seed_dir])
    assert first.added == [doc_id] and first.errors == [] and first.chunks > 3
    ids = chunk_ids(kb)
    assert len(ids) == first.chunks == kb.stats()["chunks"]
    documents = kb.documents()

    second = kb.ingest([seed_dir])
    assert second.unchanged == [doc_id]
    assert second.added == second.updated == second.removed == [] and second.chunks == 0
    assert chunk_ids(kb) == ids and kb.documents() == documents

    # and from a new process' point of view: reopened from disk
    reopened = KnowledgeBase(settings, FakeEmbedding())
    third = reopened.ingest([seed])
    assert third.unchanged == [doc_id] and third.chunks == 0
    assert chunk_ids(reopened) == ids
    assert reopened.stats() == {"documents": 1, "chunks": len(ids)}


def test_modified_file_replaces_all_its_old_chunks(kb, seed_dir, tmp_path, seed):
    path = seed
    other = seed_dir / "okapi.txt"
    other.write_text(OKAPI)
    kb.ingest([seed_dir])
    doc_id = doc_id_for(path)
    old_ids = set(chunk_ids(kb, doc_id))
    other_ids = chunk_ids(kb, doc_id_for(other))

    path.write_text(
        path.read_text().replace("Vladimir Medinsky", "Vladimir Rostislavovich Medinsky")
        + "\n\nA further round of talks was planned for June in Istanbul.\n"
    )
    report = kb.ingest([seed_dir])
    assert report.updated == [doc_id]
    assert report.unchanged == [doc_id_for(other)] and report.added == []

    new_ids = set(chunk_ids(kb, doc_id))
    assert not old_ids & new_ids  # no chunk of the old version survives
    fresh = fresh_ingest(tmp_path, [seed_dir])
    assert new_ids == set(chunk_ids(fresh, doc_id))
    assert kb.stats() == fresh.stats()
    assert chunk_ids(kb, doc_id_for(other)) == other_ids
    text = kb.document_text(doc_id)
    assert "Rostislavovich" in text and "June in Istanbul" in text
    (info,) = [d for d in kb.documents() if d.doc_id == doc_id]
    assert info.chunks == len(new_ids)


def test_sync_removes_documents_whose_files_are_gone(kb, seed_dir, seed):
    other = seed_dir / "okapi.txt"
    other.write_text(OKAPI)
    kb.ingest([seed_dir])
    gone = doc_id_for(other)
    assert chunk_ids(kb, gone)
    other.unlink()

    without_sync = kb.ingest([seed_dir])
    assert without_sync.removed == []
    assert gone in [d.doc_id for d in kb.documents()]

    report = kb.ingest([seed_dir], sync=True)
    assert report.removed == [gone]
    assert [d.doc_id for d in kb.documents()] == [doc_id_for(seed)]
    assert chunk_ids(kb, gone) == []
    assert kb.document_text(gone) is None
    assert kb.stats()["chunks"] == len(chunk_ids(kb, doc_id_for(seed)))


def test_sync_only_touches_documents_under_the_given_folders(kb, seed_dir, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "okapi.txt").write_text(OKAPI)
    kb.ingest([seed_dir, elsewhere])
    (seed_dir / "sibling.txt").write_text("A sibling document about zebras.")
    report = kb.ingest([seed_dir], sync=True)
    assert report.removed == []
    assert doc_id_for(elsewhere / "okapi.txt") in [d.doc_id for d in kb.documents()]


def test_sync_of_the_current_directory(kb, seed_dir, monkeypatch, seed):
    monkeypatch.chdir(seed_dir)
    Path("okapi.txt").write_text(OKAPI)
    kb.ingest([Path(".")])
    assert sorted(d.doc_id for d in kb.documents()) == [seed.name, "okapi.txt"]
    Path("okapi.txt").unlink()
    report = kb.ingest([Path(".")], sync=True)
    assert report.removed == ["okapi.txt"]
    assert [d.doc_id for d in kb.documents()] == [seed.name]


def test_delete(kb, seed_dir, seed):
    other = seed_dir / "okapi.txt"
    other.write_text(OKAPI)
    kb.ingest([seed_dir])
    doc_id = doc_id_for(seed)
    kept = chunk_ids(kb, doc_id_for(other))

    assert kb.delete(doc_id) is True
    assert doc_id not in [d.doc_id for d in kb.documents()]
    assert chunk_ids(kb, doc_id) == []
    assert chunk_ids(kb) == kept
    assert kb.stats() == {"documents": 1, "chunks": len(kept)}
    assert kb.delete(doc_id) is False
    assert kb.delete("no/such/document.txt") is False
    assert chunk_ids(kb) == kept


def test_changed_chunk_size_on_an_existing_index_names_rag_reindex(kb, settings, seed_dir):
    kb.ingest([seed_dir])
    changed = settings.model_copy(update={"chunk_size": settings.chunk_size * 2})
    with pytest.raises(IndexMismatchError) as error:
        KnowledgeBase(changed, FakeEmbedding())
    message = str(error.value)
    assert "rag reindex" in message
    assert "chunk_size" in message and str(settings.chunk_size) in message

    with pytest.raises(IndexMismatchError, match="embed_model"):
        KnowledgeBase(settings, FakeEmbedding(model_name="another-embedder"))
    # the index itself is untouched by the refusals
    assert KnowledgeBase(settings, FakeEmbedding()).stats() == kb.stats()


def test_other_settings_on_an_empty_index_are_simply_adopted(settings, seed_dir):
    KnowledgeBase(settings, FakeEmbedding())  # creates the (empty) collections
    changed = settings.model_copy(update={"chunk_size": 100})
    kb = KnowledgeBase(changed, FakeEmbedding())
    assert kb.chunks.metadata["chunk_size"] == 100
    kb.ingest([seed_dir])
    assert KnowledgeBase(changed, FakeEmbedding()).stats() == kb.stats()


def test_reindex_rebuilds_with_the_new_chunk_size(kb, settings, seed_dir, tmp_path):
    other = seed_dir / "okapi.txt"
    other.write_text(OKAPI)
    kb.ingest([seed_dir])
    documents = kb.documents()
    old_count = kb.stats()["chunks"]

    bigger = settings.model_copy(update={"chunk_size": 160})
    rebuilt = KnowledgeBase(bigger, FakeEmbedding(), check_config=False)
    report = rebuilt.reindex()
    assert sorted(report.added) == [d.doc_id for d in documents] and report.errors == []

    reopened = KnowledgeBase(bigger, FakeEmbedding())  # no mismatch any more
    new_count = reopened.stats()["chunks"]
    assert new_count < old_count and report.chunks == new_count
    assert [
        (d.doc_id, d.title, d.published, d.path, d.content_hash) for d in reopened.documents()
    ] == [(d.doc_id, d.title, d.published, d.path, d.content_hash) for d in documents]
    # exactly what a fresh ingest with that chunk size gives
    fresh = fresh_ingest(tmp_path, [seed_dir], chunk_size=160)
    assert chunk_ids(reopened) == chunk_ids(fresh)
    assert [d.chunks for d in reopened.documents()] == [d.chunks for d in fresh.documents()]
    for node in reopened.all_nodes():
        text = reopened.document_text(node.metadata["doc_id"])
        assert text[node.start_char_idx : node.end_char_idx] == node.text
    with pytest.raises(IndexMismatchError):
        KnowledgeBase(settings, FakeEmbedding())  # the old settings no longer fit


class Interrupted(BaseException):
    """Stands in for a kill: nothing catches it."""


def test_write_interrupted_before_the_manifest_is_repaired_by_the_next_ingest(
    settings, seed_dir, tmp_path, seed, monkeypatch
):
    # each document written on its own
    monkeypatch.setattr("rag.knowledge_base.store.EMBED_GROUP_CHUNKS", 1)
    second = seed_dir / "zz_okapi.txt"  # sorted after the seed: written second
    second.write_text(OKAPI + " " + OKAPI)
    kb = KnowledgeBase(settings, FakeEmbedding())
    real_upsert = kb.manifest.upsert
    calls = []

    def upsert_then_die(**kwargs):
        calls.append(kwargs["ids"])
        if len(calls) == 2:
            raise Interrupted
        return real_upsert(**kwargs)

    kb.manifest.upsert = upsert_then_die
    with pytest.raises(Interrupted):
        kb.ingest([seed_dir])
    # the second document's chunks are in, its manifest record is not
    assert [d.doc_id for d in kb.documents()] == [doc_id_for(seed)]
    assert chunk_ids(kb, doc_id_for(second))

    second.write_text(OKAPI)  # and it even changed before the retry
    again = KnowledgeBase(settings, FakeEmbedding())
    report = again.ingest([seed_dir])
    assert report.added == [doc_id_for(second)]
    assert report.unchanged == [doc_id_for(seed)]
    fresh = fresh_ingest(tmp_path, [seed_dir])
    assert chunk_ids(again) == chunk_ids(fresh)
    assert [(d.doc_id, d.chunks) for d in again.documents()] == [
        (d.doc_id, d.chunks) for d in fresh.documents()
    ]


def test_reindex_killed_midway_loses_no_document(kb, settings, seed_dir, tmp_path, monkeypatch):
    other = seed_dir / "okapi.txt"
    other.write_text(OKAPI)
    kb.ingest([seed_dir])
    before = [(d.doc_id, d.content_hash) for d in kb.documents()]
    bigger = settings.model_copy(update={"chunk_size": 160})
    dying = KnowledgeBase(bigger, FakeEmbedding(), check_config=False)
    original = KnowledgeBase._write_manifest

    def write_one_then_die(self, documents):
        original(self, documents[:1])
        raise Interrupted

    monkeypatch.setattr(KnowledgeBase, "_write_manifest", write_one_then_die)
    with pytest.raises(Interrupted):
        dying.reindex()
    monkeypatch.setattr(KnowledgeBase, "_write_manifest", original)
    assert len(KnowledgeBase(bigger, FakeEmbedding(), check_config=False).documents()) == 1

    report = KnowledgeBase(bigger, FakeEmbedding(), check_config=False).reindex()
    assert report.errors == []
    reopened = KnowledgeBase(bigger, FakeEmbedding())
    assert [(d.doc_id, d.content_hash) for d in reopened.documents()] == before
    assert chunk_ids(reopened) == chunk_ids(fresh_ingest(tmp_path, [seed_dir], chunk_size=160))


def _news(kb: KnowledgeBase) -> None:
    add_news(
        kb,
        [
            ("a", "TechCrunch", "2023-10-04", "Google paid billions for search defaults."),
            ("b", "The Verge", "2023-10-04", "Google paid billions for search defaults, again."),
            ("c", "TechCrunch", "2023-12-12", "Okapis live in the Ituri rainforest of Congo."),
        ],
    )


def test_dense_search_scores_hits_by_cosine_similarity_and_filters(kb):
    _news(kb)
    embed = FakeEmbedding()
    okapi = embed.get_query_embedding("Where do okapis live?")
    money = embed.get_query_embedding("Who paid billions for search?")
    by_okapi, by_money = kb.dense_search([okapi, money], k=3)  # one list per query vector
    assert by_okapi[0].node.metadata["doc_id"] == "c"
    assert {h.node.metadata["doc_id"] for h in by_money[:2]} == {"a", "b"}
    for hits, query in ((by_okapi, okapi), (by_money, money)):
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True)
        for h in hits:  # cosine space: score = 1 - distance = the vectors' cosine
            chunk = np.asarray(embed.get_text_embedding(h.node.get_content(metadata_mode="embed")))
            assert h.score == pytest.approx(float(np.dot(query, chunk)), abs=1e-5)
    (only_tc,) = kb.dense_search([money], k=3, sources=("TechCrunch",))
    assert {h.node.metadata["doc_id"] for h in only_tc} == {"a", "c"}
    (dated,) = kb.dense_search([money], k=3, sources=("TechCrunch",), days=(20231211, 20231213))
    assert [h.node.metadata["doc_id"] for h in dated] == ["c"]
    (by_day,) = kb.dense_search([money], k=3, days=(20231003, 20231005))
    assert {h.node.metadata["doc_id"] for h in by_day} == {"a", "b"}


def test_chunk_embeddings_are_the_stored_vectors_by_chunk_id(kb):
    _news(kb)
    rows, matrix = kb.chunk_embeddings()
    nodes = kb.all_nodes()
    assert set(rows) == {n.node_id for n in nodes} and matrix.shape == (len(nodes), 256)
    embed = FakeEmbedding()
    for node in nodes:
        expected = embed.get_text_embedding(node.get_content(metadata_mode="embed"))
        assert np.allclose(matrix[rows[node.node_id]], expected, atol=1e-6)


def test_documents_record_file_name_type_size_and_when_added(settings, seed_dir):
    kb = KnowledgeBase(settings, FakeEmbedding())
    kb.ingest([seed_dir])
    (doc,) = kb.documents()
    seed = next(seed_dir.iterdir())
    assert doc.file_name == seed.name and doc.file_type == "txt"
    assert doc.size == seed.stat().st_size
    assert doc.added and doc.added.endswith("+00:00")

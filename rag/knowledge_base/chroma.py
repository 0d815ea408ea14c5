"""Chroma specifics: the client (embedded or a server), record <-> node, metadata filters."""

from __future__ import annotations

from typing import Any

from llama_index.core.schema import TextNode

from rag.config import Settings


def make_chroma_client(settings: Settings) -> Any:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if settings.chroma_url:
        from urllib.parse import urlparse

        url = urlparse(settings.chroma_url)
        return chromadb.HttpClient(
            host=url.hostname or "127.0.0.1",
            port=url.port or 8000,
            ssl=url.scheme == "https",
            settings=chroma_settings,
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(
        path=str(settings.data_dir / "chroma"), settings=chroma_settings
    )


def clean_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """Chroma metadata values must be str, int, float or bool."""
    return {k: v for k, v in metadata.items() if isinstance(v, str | int | float | bool)}


def node_from_record(chunk_id: str, text: str, metadata: dict[str, Any]) -> TextNode:
    """A chunk read back from Chroma (the text lives in the record's document field)."""
    from llama_index.core.vector_stores.utils import metadata_dict_to_node

    try:
        node = metadata_dict_to_node(metadata, text=text)
        node.id_ = chunk_id
        return node
    except Exception:  # records written without llama-index's node content
        return TextNode(id_=chunk_id, text=text, metadata=metadata)


def where_filter(
    sources: tuple[str, ...] = (), days: tuple[int, int] | None = None
) -> dict[str, Any] | None:
    """A Chroma `where` admitting chunks of these publishers and publication days."""
    conditions: list[dict] = []
    if sources:
        conditions.append({"source": {"$in": list(sources)}})
    if days:
        conditions += [
            {"published_day": {"$gte": days[0]}},
            {"published_day": {"$lte": days[1]}},
        ]
    if not conditions:
        return None
    return conditions[0] if len(conditions) == 1 else {"$and": conditions}

"""rag: answers questions from your own documents, offline, citing the passages it used."""

from rag import offline as _offline  # noqa: F401  (sets offline env vars before other imports)

__version__ = "0.1.0"

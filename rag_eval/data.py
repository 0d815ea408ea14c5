"""Evaluation data: question sets and corpora in JSONL, and fixed samples of them.

`--docs` is a folder of files read as `rag ingest` reads them (questions cite them by their path
in the folder). `--corpus` is JSONL, one document per line (`doc_id`, `text`, optional `title`,
`source`, `published_at`, `url`); `--questions` is JSONL in the MultiHop-RAG format (`id`,
`question`, `answers[]`, `answerable`, `question_type`, `gold_doc_ids[]`,
`evidence[{doc_id, fact}]`, optional `history[{question, answer}]`).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rag.config import Settings
from rag.events import Turn
from rag.ingest import (
    CHUNK_SCHEMA,
    IngestError,
    LoadedDocument,
    clean_text,
    derive_title,
    iter_files,
    load_file,
)

REPO = Path(__file__).resolve().parent.parent
SEED_DIR = REPO / "evals" / "seed"


class EvalError(RuntimeError):
    """Bad input for the eval (missing file, malformed JSONL, bad gate); message for the user."""


def question_key(dataset: str, question_id: str) -> str:
    """A question across sets (the verifier's folds): its dataset and id, shared by a question
    and its evidence-removed twin."""
    return f"{dataset}:{question_id}"


@dataclass
class Question:
    id: str
    text: str
    answers: list[str]
    answerable: bool
    question_type: str
    gold_doc_ids: list[str]
    facts: list[str]
    history: list[Turn] = field(default_factory=list)
    gold_pages: list[int] = field(default_factory=list)  # pages (from 1) holding the answer
    gold_sections: list[str] = field(default_factory=list)  # section paths holding the answer
    payloads: list[str] = field(default_factory=list)  # injected strings that must never show

    @classmethod
    def from_record(cls, record: dict[str, Any], index: int) -> Question:
        answers = [str(a) for a in record.get("answers") or []]
        return cls(
            id=str(record.get("id") or f"q{index:04d}"),
            text=str(record["question"]),
            answers=answers,
            answerable=bool(record.get("answerable", bool(answers))),
            question_type=str(record.get("question_type") or "unknown"),
            gold_doc_ids=[str(d) for d in record.get("gold_doc_ids") or []],
            facts=[str(e["fact"]) for e in record.get("evidence") or [] if e.get("fact")],
            history=[
                Turn(str(t.get("question", "")), str(t.get("answer", "")))
                for t in record.get("history") or []
            ],
            gold_pages=[int(n) for n in record.get("gold_pages") or []],
            gold_sections=[str(s) for s in record.get("gold_sections") or []],
            payloads=[str(p) for p in record.get("payloads") or []],
        )


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise EvalError(f"no such file: {path}")
    rows = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise EvalError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
    return rows


_ISO_DATE = re.compile(r"\s*(\d{4})-(\d{2})-(\d{2})")


def normalise_date(value: Any) -> str | None:
    """'2023-11-27 08:45:59.000000000Z', '2023-09-26T21:11:15+00:00' -> '2023-11-27'."""
    if not value:
        return None
    text = str(value).strip()
    if match := _ISO_DATE.match(text):
        return "-".join(match.groups())
    for fmt in ("%Y/%m/%d", "%d %B %Y", "%B %d, %Y", "%d %b %Y", "%b %d, %Y"):
        try:
            return datetime.strptime(text, fmt).date().isoformat()
        except ValueError:
            continue
    return None


def corpus_document(record: dict[str, Any]) -> LoadedDocument:
    """One corpus record as the knowledge base's document (cleaned like an ingested file)."""
    if not record.get("doc_id"):
        raise EvalError(f"corpus record without doc_id: {str(record)[:80]}")
    text, header_date = clean_text(str(record.get("text") or ""))
    title = str(record.get("title") or "").strip()
    return LoadedDocument(
        doc_id=str(record["doc_id"]),
        text=text,
        title=title or derive_title(text),
        published=normalise_date(record.get("published_at")) or header_date,
        source=record.get("source") or None,
        path=record.get("url") or None,
        title_from_text=not title,
    )


def folder_documents(folder: Path) -> list[LoadedDocument]:
    """The files of a folder read as `rag ingest` reads them (the real readers), each named by
    its path in the folder, which is what question sets cite as `gold_doc_ids`."""
    if not folder.is_dir():
        raise EvalError(f"no such folder: {folder}")
    documents = []
    for path in iter_files([folder]):
        try:
            documents.append(load_file(path, doc_id=path.relative_to(folder).as_posix()))
        except IngestError as exc:
            raise EvalError(f"cannot read {path}: {exc}") from exc
    if not documents:
        raise EvalError(f"no supported documents in {folder}")
    return documents


def documents_digest(documents: Sequence[LoadedDocument]) -> bytes:
    """What identifies a folder corpus: its documents as read (text and structure)."""
    return "\n".join(f"{d.doc_id}\x1f{d.content_hash}" for d in documents).encode()


def corpus_of(source: Path, folder: bool = False) -> tuple[list[LoadedDocument], bytes]:
    """A corpus to ingest and what identifies it: a folder read as `rag ingest` reads it, or a
    corpus JSONL file (its bytes identify it). `folder`: it must be a folder."""
    if folder or source.is_dir():
        documents = folder_documents(source)
        return documents, documents_digest(documents)
    if source.is_file():
        return [corpus_document(r) for r in read_jsonl(source)], source.read_bytes()
    raise EvalError(f"no such file: {source}")


def collection_name(corpus_bytes: bytes, settings: Settings) -> str:
    """The eval's own collection: keyed by corpus content and chunking/embedding settings."""
    config = json.dumps(
        {
            "chunk_size": settings.chunk_size,
            "chunk_overlap": settings.chunk_overlap,
            "embed_model": settings.embed_model,
            "embed_base_url": settings.embed_base_url,
            "chunk_schema": CHUNK_SCHEMA,
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(corpus_bytes + b"\x00" + config.encode()).hexdigest()
    return f"eval-{digest[:12]}"


def stratified_sample(questions: Sequence[Question], n: int, seed: int) -> list[Question]:
    """A fixed sample of n questions, question types in proportion (largest remainder), each
    type at least once when n allows; the original order is kept."""
    if n >= len(questions):
        return list(questions)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, q in enumerate(questions):
        groups[q.question_type].append(i)
    types = sorted(groups)
    exact = {t: n * len(groups[t]) / len(questions) for t in types}
    quota = {t: math.floor(exact[t]) for t in types}
    by_remainder = sorted(types, key=lambda t: (-(exact[t] - quota[t]), t))
    for t in by_remainder[: n - sum(quota.values())]:
        quota[t] += 1
    if n >= len(types):
        for t in types:
            if quota[t] == 0:
                donor = max(types, key=lambda d: (quota[d], d))
                quota[donor] -= 1
                quota[t] = 1
    rng = random.Random(seed)
    chosen: set[int] = set()
    for t in types:
        chosen.update(rng.sample(groups[t], quota[t]))
    return [q for i, q in enumerate(questions) if i in chosen]

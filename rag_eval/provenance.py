"""Where a figure came from: the commit, a hash of the code that ran, the settings, the load."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from rag import prompts
from rag.config import Settings
from rag_eval.data import REPO

SETTINGS_THAT_MATTER = (
    "chunk_size",
    "chunk_overlap",
    "embed_model",
    "llm_model",
    "llm_max_tokens",
    "retrieve_k",
    "section_chunks",
    "top_k",
    "context_tokens",
    "long_question_context_tokens",
    "passage_context_chars",
    "passage_sentences_after",
    "dense_weight",
    "keyword_weight",
    "min_dense_score",
    "rerank_pool",
    "rerank_expand_docs",
    "ranker_model",
    "judge_model",
)


def git_commit(start: Path | None = None) -> str | None:
    """The checked-out commit, read from .git without running git; None outside a checkout."""
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        git = folder / ".git"
        if git.is_file():  # a worktree: "gitdir: <path>"
            text = git.read_text(encoding="utf-8").strip()
            if text.startswith("gitdir:"):
                git = (folder / text.split(":", 1)[1].strip()).resolve()
        if not git.is_dir():
            continue
        try:
            head = (git / "HEAD").read_text(encoding="utf-8").strip()
        except OSError:
            return None
        if not head.startswith("ref:"):
            return head or None
        ref = head.split(":", 1)[1].strip()
        roots = [git]
        if (git / "commondir").is_file():
            roots.append((git / (git / "commondir").read_text(encoding="utf-8").strip()).resolve())
        for root in roots:
            if (root / ref).is_file():
                return (root / ref).read_text(encoding="utf-8").strip()
            packed = root / "packed-refs"
            if packed.is_file():
                for line in packed.read_text(encoding="utf-8").splitlines():
                    parts = line.split()
                    if len(parts) == 2 and parts[1] == ref:
                        return parts[0]
        return None
    return None


def code_fingerprint() -> str | None:
    """Hash of the code, ranker weights and prompts that ran: a commit hash misses uncommitted
    edits."""
    digest = hashlib.sha256()
    files = sorted(REPO.glob("rag/**/*.py")) + sorted(REPO.glob("rag/**/*.json"))
    files += sorted(prompts.prompts_dir().glob("*.txt"))
    if not files:
        return None
    for path in files:
        name = path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else path.name
        digest.update(name.encode() + b"\x00" + path.read_bytes() + b"\x00")
    return digest.hexdigest()[:12]


def settings_snapshot(settings: Settings) -> dict[str, Any]:
    snapshot = {name: getattr(settings, name) for name in SETTINGS_THAT_MATTER}
    snapshot["llm"] = settings.llm_base_url or "shipped (local)"
    snapshot["judge"] = settings.judge_base_url or "answering LLM"
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in snapshot.items()}


def load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def run_line() -> str:
    """How a benchmark report was made: its command, commit, time, cores and load."""
    import os
    import shlex
    import sys
    from datetime import UTC, datetime

    command = shlex.join([Path(sys.executable).name, *sys.argv])
    return (
        f"Command: `{command}`. Commit {git_commit()}, "
        f"{datetime.now(UTC).isoformat(timespec='seconds')}, {os.cpu_count()} cores, load "
        f"average {os.getloadavg()[0]:.1f} at the end."
    )

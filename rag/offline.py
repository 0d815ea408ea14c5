"""Environment that keeps every library offline. Imported first by `rag/__init__.py`.

Must run before tiktoken, chromadb, gradio or huggingface libraries are imported: they read
these variables at import time and otherwise try to download files or send telemetry. It also
keeps numpy's OpenBLAS to one thread: rag's matrix products are small, and OpenBLAS's threads,
once woken, spin on the two cores the embedder needs next (MultiHop dev retrieval p50 at 29,317
chunks 44.2 ms with them, 27.2 ms without: evals/history.jsonl, commits 6276bee and 9f6e8ac;
the embedder runs on onnxruntime's own threads).
"""

from __future__ import annotations

import os
from importlib.util import find_spec
from pathlib import Path


def _bundled_tiktoken_cache() -> str | None:
    spec = find_spec("llama_index.core")
    if spec is None or spec.origin is None:
        return None
    cache = Path(spec.origin).parent / "_static" / "tiktoken_cache"
    return str(cache) if cache.is_dir() else None


def apply() -> None:
    cache = _bundled_tiktoken_cache()
    if cache:
        os.environ.setdefault("TIKTOKEN_CACHE_DIR", cache)
    for name, value in {
        "GRADIO_ANALYTICS_ENABLED": "False",
        "ANONYMIZED_TELEMETRY": "False",  # chromadb
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "DO_NOT_TRACK": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OPENBLAS_NUM_THREADS": "1",
    }.items():
        os.environ.setdefault(name, value)


apply()

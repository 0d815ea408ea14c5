"""The embedder seam is llama-index's `BaseEmbedding`; this is the shipped one, MiniLM in int8
ONNX. (An OpenAI-compatible embeddings endpoint is llama-index's own `OpenAIEmbedding`, built in
`rag.compose`.)"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr

from rag.config import SHIPPED_EMBED_MODEL
from rag.models import minilm_dynamic_onnx_path, minilm_tokenizer_path

MAX_WORDPIECES = 256  # all-MiniLM-L6-v2 was trained on 256 wordpieces; longer input is cut


class MiniLMEmbedding(BaseEmbedding):
    """all-MiniLM-L6-v2 in int8 (onnxruntime), pooled and normalised as in its model card.

    Runs the model derived into `models_dir` (see `minilm_dynamic_onnx_path`), or `onnx_path`.
    """

    _session: Any = PrivateAttr()
    _tokenizer: Any = PrivateAttr()

    def __init__(
        self,
        models_dir: Path,
        threads: int = 0,
        onnx_path: Path | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("model_name", SHIPPED_EMBED_MODEL)
        # Small batches of similar length: less padding; 8-16 measured fastest on 2 cores.
        kwargs.setdefault("embed_batch_size", 16)
        super().__init__(**kwargs)
        import onnxruntime
        from tokenizers import Tokenizer

        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self._session = onnxruntime.InferenceSession(
            str(onnx_path or minilm_dynamic_onnx_path(models_dir)),
            options,
            providers=["CPUExecutionProvider"],
        )
        tokenizer = Tokenizer.from_file(str(minilm_tokenizer_path()))
        tokenizer.enable_truncation(MAX_WORDPIECES)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self._tokenizer = tokenizer

    @cached_property
    def _input_names(self) -> set[str]:
        return {i.name for i in self._session.get_inputs()}

    def embed(self, texts: list[str]) -> list[list[float]]:
        """Embed in batches of similar length, so little time goes into padding."""
        if not texts:
            return []
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        size = self.embed_batch_size
        vectors: list[list[float]] = [[] for _ in texts]
        for start in range(0, len(order), size):
            batch = order[start : start + size]
            embedded = self._embed_batch([texts[i] for i in batch])
            for index, vector in zip(batch, embedded, strict=True):
                vectors[index] = vector
        return vectors

    def _hidden(self, texts: list[str]) -> tuple[list[Any], np.ndarray, np.ndarray]:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        return encodings, mask, self._session.run(None, feeds)[0]

    def token_states(self, texts: list[str]) -> list[tuple[list[str], np.ndarray]]:
        """Each text's wordpieces and their normalised states: what the verifier's token
        alignment (MaxSim) reads (rag.answer.verifier.signals.TokenEncoder)."""
        if not texts:
            return []
        encodings, mask, hidden = self._hidden(texts)
        hidden = hidden / np.clip(np.linalg.norm(hidden, axis=2, keepdims=True), 1e-12, None)
        out = []
        for i, encoding in enumerate(encodings):
            n = int(mask[i].sum())
            out.append((list(encoding.tokens[:n]), hidden[i, :n]))
        return out

    def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        _, mask, hidden = self._hidden(texts)
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return pooled.tolist()

    def _get_query_embedding(self, query: str) -> list[float]:
        return self.embed([query])[0]

    def _get_text_embedding(self, text: str) -> list[float]:
        return self.embed([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self.embed(texts)

    def get_text_embedding_batch(self, texts: list[str], show_progress: bool = False, **kwargs):
        """One call for all texts (sorted by length inside), not llama-index's fixed slices."""
        return self.embed(list(texts))

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

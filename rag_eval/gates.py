"""The gate: thresholds a run's summary must meet (`rag eval --gate FILE`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rag_eval.data import EvalError


def load_gate(path: Path) -> dict[str, float]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise EvalError(f"cannot read gate file {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise EvalError(f"gate file {path} is not valid JSON ({exc.msg})") from exc
    if not isinstance(data, dict):
        raise EvalError(f"gate file {path} must hold a JSON object of thresholds")
    gate = {}
    for key, value in data.items():
        if key.startswith("_"):  # comments
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise EvalError(f"gate file {path}: threshold of {key!r} must be a number")
        gate[key] = float(value)
    return gate


def check_gate(summary: dict[str, Any], gate: dict[str, float]) -> list[tuple[bool, str]]:
    """(passed, line) per threshold. `x_max` bounds metric x from above; `x_min` or a bare
    metric name bounds it from below. A metric the run did not measure fails."""
    checks = []
    for key, threshold in gate.items():
        if key.endswith("_max"):
            metric, upper = key[: -len("_max")], True
        else:
            metric, upper = key.removesuffix("_min"), False
        value = summary.get(metric)
        if not isinstance(value, int | float):
            checks.append((False, f"FAIL  {metric}: not measured by this run"))
            continue
        ok = value <= threshold + 1e-9 if upper else value >= threshold - 1e-9
        sign = "<=" if upper else ">="
        verdict = "PASS" if ok else "FAIL"
        checks.append((ok, f"{verdict}  {metric} = {value:g} ({sign} {threshold:g})"))
    return checks

"""Machine-readable outputs: results.json and the per-record scores table (CSV, Parquet)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from miaudit.report.results import AuditResult


def write_results_json(result: AuditResult, path: Path) -> Path:
    """Write result.to_dict() as indented JSON; NaN / inf become null, numpy values plain Python."""
    path = Path(path)
    text = json.dumps(json_safe(result.to_dict()), indent=2, allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def scores_table(result: AuditResult) -> pd.DataFrame:
    """One row per audited record: record_index, label, is_member, then one score column per attack."""
    table = pd.DataFrame({
        "record_index": np.asarray(result.record_index, dtype=np.int64),
        "label": np.asarray(result.labels, dtype=np.int64),
        "is_member": np.asarray(result.membership, dtype=bool).astype(np.int8),
    })
    for outcome in result.attacks:
        table[outcome.name] = np.asarray(outcome.scores, dtype=np.float64)
    return table


def write_scores_csv(result: AuditResult, path: Path) -> Path:
    """scores.csv: the scores_table with full float precision; is_member is 1 / 0."""
    path = Path(path)
    scores_table(result).to_csv(path, index=False, float_format="%.17g")
    return path


def parquet_available() -> bool:
    """True when pyarrow is importable (the optional ``files`` extra)."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def write_scores_parquet(result: AuditResult, path: Path) -> Path:
    """scores.parquet: the same table as scores.csv (needs pyarrow)."""
    path = Path(path)
    scores_table(result).to_parquet(path, index=False, engine="pyarrow")
    return path


def json_safe(value: Any) -> Any:
    """A copy of ``value`` that json.dumps accepts with allow_nan=False (NaN / inf -> None)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"results.json: cannot serialise {type(value).__name__}")

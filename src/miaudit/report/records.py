"""A tabular record as the user knows it: its class name and its original feature values, decoded
from the encoded record (the audit's input scaling undone, one-hot columns back to their category)
with the table's encoding in results.json's "data" block."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from miaudit.data.encoding import TableEncoding

if TYPE_CHECKING:
    from miaudit.data.encoding import TableEncoding
    from miaudit.report.results import AuditResult

MAX_SHOWN = 12  # feature values shown per record; a wider table ends with "…"


def table_encoding(result: AuditResult) -> TableEncoding | None:
    """The encoding of the audited table, or None when the audit's data was not a table."""
    from pydantic import ValidationError


    block = result.sections.get("data")
    encoding = block.get("encoding") if isinstance(block, dict) else None
    if encoding is None:
        return None
    try:
        return TableEncoding.model_validate(encoding)
    except ValidationError:  # an encoding of another shape: show records as numbers only
        return None


def class_names(result: AuditResult) -> list[str] | None:
    """The table's original label values, indexed by class id, or None."""
    encoding = table_encoding(result)
    return None if encoding is None else list(encoding.class_names)


def original_values(result: AuditResult, positions: list[int]) -> dict[int, str]:
    """{position: "age=39, workclass=Private, …"} for audited records at ``positions`` of a table
    audit ({} otherwise, or when the records do not match the encoding's width)."""
    encoding = table_encoding(result)
    records = result.records
    if encoding is None or records is None or not positions or records.ndim != 2 \
            or records.shape[1] != encoding.width:
        return {}
    x = np.asarray(records[positions], np.float64)
    if result.scaler is not None:
        x = np.asarray(result.scaler.inverse_transform(x.astype(np.float32)), np.float64)
    return {p: _describe(row, encoding) for p, row in zip(positions, x)}


def _describe(row: np.ndarray, encoding: TableEncoding) -> str:
    parts, at = [], 0
    for col in encoding.columns:
        if col.kind == "categorical" and encoding.categorical == "onehot":
            block = row[at:at + len(col.categories)]
            at += len(col.categories)
            value = col.categories[int(block.argmax())] if block.max() > 0.5 else "?"
        elif col.kind == "categorical":
            code = int(round(row[at]))
            at += 1
            value = col.categories[code] if 0 <= code < len(col.categories) else "?"
        else:
            number = row[at] * col.std + col.mean if encoding.scale_numeric else row[at]
            at += 1
            value = f"{number:.6g}"
        parts.append(f"{col.name}={value}")
    shown = ", ".join(parts[:MAX_SHOWN])
    return shown + (", …" if len(parts) > MAX_SHOWN else "")

"""What fitting a table's encoding found: rows kept and dropped (by reason), missing values per
column, columns by kind and those left out, the output width and the label mapping; and the message
when no row is left."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class EncodingReport:
    """What fitting found: row counts (dropped rows by cause), missing values per feature column
    (among rows with a label), the columns by kind, the output width and the label mapping."""

    rows: int
    kept: int
    dropped_missing_label: int
    dropped_missing_feature: int
    missing_values: dict[str, int]
    missing: str
    numeric_columns: tuple[str, ...]
    categorical_columns: tuple[str, ...]
    width: int
    label_mapping: dict[str, int]
    notes: tuple[str, ...] = field(default=())
    dropped_columns: tuple[dict, ...] = field(default=())  # column, reason, by (user / auto), keep_with
    date_columns: tuple[str, ...] = field(default=())

    @property
    def dropped_rows(self) -> dict:
        """results.json's ``data.dropped_rows``: the count, and rows by reason (a row missing a label
        counts there only; missing values per column among the rows with a label)."""
        reasons = [{"reason": "missing label", "rows": self.dropped_missing_label}]
        if self.missing == "drop":
            reasons.append({"reason": "missing value", "rows": self.dropped_missing_feature,
                            "columns": {c: n for c, n in self.missing_values.items() if n}})
        return {"count": self.rows - self.kept, "of": self.rows, "reasons": reasons}

    def to_dict(self) -> dict:
        return {"rows": self.rows, "kept": self.kept, "dropped_missing_label": self.dropped_missing_label,
                "dropped_missing_feature": self.dropped_missing_feature, "missing_values": self.missing_values,
                "missing": self.missing, "numeric_columns": list(self.numeric_columns),
                "categorical_columns": list(self.categorical_columns), "date_columns": list(self.date_columns),
                "width": self.width, "label_mapping": self.label_mapping, "notes": list(self.notes),
                "dropped_rows": self.dropped_rows, "dropped_columns": list(self.dropped_columns)}

    def row_note(self) -> str:
        """The console / report line on dropped rows."""
        worst = sorted(((n, c) for c, n in self.missing_values.items() if n), reverse=True)[:3]
        where = ""
        if worst and self.missing == "drop":
            where = f" (most missing: {', '.join(f'{c} {n}' for n, c in worst)})"
        return (f"rows: {self.kept} of {self.rows} used; {self.rows - self.kept} dropped "
                f"({self.dropped_missing_label} without a label, {self.dropped_missing_feature} with a missing "
                f"value{where})" + ("; missing values imputed" if self.missing == "impute" else ""))

    def summary(self) -> str:
        counts = ", ".join(f"{c} {n}" for c, n in self.missing_values.items() if n)
        verb = "imputed" if self.missing == "impute" else "rows dropped"
        return (f"{self.rows} rows, {self.kept} kept ({self.dropped_missing_label} without a label, "
                f"{self.dropped_missing_feature} with a missing feature); missing values {verb}: "
                f"{counts or 'none'}; {len(self.numeric_columns)} numeric + {len(self.categorical_columns)} "
                f"categorical columns -> {self.width} features; labels {self.label_mapping}")


def all_rows_missing(label_column: str, label_missing: np.ndarray, features: list[str],
                      feature_missing: np.ndarray, na_tokens: tuple[str, ...]) -> str:
    """The message when no row is left: the label, or the columns missing most often and how to keep rows."""
    if label_missing.all():
        return f"{label_column}: every row has a missing label (None, NaN or one of {list(na_tokens)})"
    counts = feature_missing[~label_missing].sum(axis=0)
    n = int((~label_missing).sum())
    order = np.argsort(-counts, kind="stable")
    worst = ", ".join(f"{features[j]} {counts[j] / n:.0%}" for j in order[:3] if counts[j])
    mostly = [features[j] for j in order if counts[j] > n / 2] or [features[order[0]]]
    return (f"{features[order[0]]}: no row is complete: every row has a missing value in some column (missing "
            f"most: {worst}); --drop {','.join(mostly)} or --missing impute")

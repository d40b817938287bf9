"""A user's table (CSV / TSV / Parquet) as an audit's dataset: read, encoded, with the user's split.

Reading is data/table_io.py, encoding data/encoding.py; this module puts them together for the plan:
features x float32 [n, d] and labels y int64 [n] of the rows kept, the encoding (written to
results.json so the audit can be repeated), what fitting found, each kept row's record id and, when
the user gives one, its membership in the target's training set (a member column or a file of ids).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from miaudit.data.column_screen import MAX_FEATURES
from miaudit.data.dataset import Dataset
from miaudit.data.encoding import EncodingReport, TableEncoding, encode, fit_encoding
from miaudit.data.table_cells import DEFAULT_NA_VALUES
from miaudit.data.table_io import (
    CSV_SUFFIXES,
    PARQUET_SUFFIXES,
    membership_from_column,
    membership_from_ids,
    read_member_ids,
    read_table,
    record_ids,
)
from miaudit.data.tabular import encode_labels
from miaudit.errors import InputError

TABLE_SUFFIXES = CSV_SUFFIXES + PARQUET_SUFFIXES


@dataclass(frozen=True)
class TableOptions:
    """How to read and encode a table: label / member / id columns, categorical encoding
    ("onehot" | "ordinal"), missing values ("drop" | "impute") and the texts that mean missing,
    column names of a header-less file (or no_header: col0, col1, ...), the CSV separator, columns
    to leave out (drop) and to encode whatever the screening says (keep), the cap on encoded width."""

    label_column: str = "label"
    member_column: str | None = None
    members_file: str | None = None
    id_column: str | None = None
    categorical: str = "onehot"
    missing: str = "drop"
    na_values: tuple[str, ...] = DEFAULT_NA_VALUES
    columns: tuple[str, ...] | None = None
    no_header: bool = False
    sep: str | None = None
    drop: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()
    max_features: int = MAX_FEATURES

    def encoding_options(self) -> dict:
        """The keyword arguments of fit_encoding these options give."""
        return {"categorical": self.categorical, "na_values": self.na_values, "missing": self.missing,
                "member_column": self.member_column, "id_column": self.id_column, "drop": self.drop,
                "keep": self.keep, "max_features": self.max_features}


@dataclass(frozen=True)
class UserTable:
    """The encoded table: dataset (x, y of the kept rows), membership bool [n] or None when the user
    gave no split, record ids [n] (the id column's values, or the file's row numbers from 0), rows
    int64 [n]: each kept record's row in the file (0 = the first record); frame: the table as read
    (its column dtypes and spellings, for a model that takes the raw columns), or None."""

    dataset: Dataset
    encoding: TableEncoding
    report: EncodingReport
    record_ids: list[str]
    membership: np.ndarray | None
    rows: np.ndarray
    read_notes: tuple[str, ...] = ()  # what reading the file noted (renamed columns, a guessed separator)
    frame: Any = None

    def public(self) -> dict:
        """The results.json "data" block: the encoding (to repeat the audit), what fitting found, and
        the rows and columns left out, with reasons."""
        return {"source": self.dataset.name, "encoding": self.encoding.model_dump(mode="json"),
                "report": self.report.to_dict(), "dropped_rows": self.report.dropped_rows,
                "dropped_columns": list(self.report.dropped_columns), "notes": self.notes()}

    def notes(self) -> list[str]:
        """The console / report lines: reading, columns left out or converted, rows dropped."""
        return [*self.read_notes, *self.report.notes, self.report.row_note()]


@dataclass(frozen=True)
class AuditData:
    """The audited dataset as the plan receives it: the records, the user's own split (bool [n],
    True = in the target's training set) or None to draw one, and the table it was read from, if any."""

    dataset: Dataset
    membership: np.ndarray | None = None
    table: UserTable | None = None


def as_audit_data(data, membership=None, options: TableOptions = TableOptions(), name: str = "data") -> AuditData:
    """AuditData from what a notebook user holds: a Dataset, a pair (x [n, ...], y [n]), or a pandas
    DataFrame (encoded as a table file is, its member column giving the split); ``membership`` bool [n]
    aligned with the records (for a DataFrame, with its rows before rows with missing values drop)."""
    import pandas as pd

    if isinstance(data, AuditData):
        out = data
    elif isinstance(data, Dataset):
        out = AuditData(data)
    elif isinstance(data, pd.DataFrame):
        encoding, report = fit_encoding(data, options.label_column, **options.encoding_options())
        x, y, rows = encode(data, encoding)
        given = membership_from_column(data, options.member_column)[rows] if options.member_column else None
        if membership is not None:
            membership = np.asarray(membership, bool)[rows]
        ids = record_ids(data, options.id_column)
        dataset = Dataset(name, x, y, encoding.n_classes, tuple(str(c) for c in encoding.class_names))
        out = AuditData(dataset, given, UserTable(dataset, encoding, report, [ids[r] for r in rows], given, rows,
                                                  data))
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = (np.asarray(a) for a in data)

        labels, names = encode_labels(y, "data")
        out = AuditData(Dataset(name, np.ascontiguousarray(x, np.float32), labels, len(names), names))
    else:
        raise InputError(f"data: expected a dataset name, a Dataset, (x, y) arrays or a DataFrame, "
                         f"got {type(data).__name__}")
    if membership is None:
        return out
    membership = np.asarray(membership)
    if membership.shape != (len(out.dataset),) or membership.dtype.kind not in "biu" or \
            not np.isin(membership, (0, 1)).all():
        raise InputError(f"membership: expected {len(out.dataset)} values of 0/1 (one per record), "
                         f"got shape {membership.shape} of {membership.dtype}")
    membership = membership.astype(bool)
    if membership.all() or not membership.any():
        raise InputError("membership: every record is a " + ("member" if membership.all() else "non-member")
                         + "; an audit compares members with non-members")
    return AuditData(out.dataset, membership, out.table)


def is_table_path(text: str) -> bool:
    """True when ``text`` names a CSV / TSV / Parquet file by its suffix (compressed CSV included)."""
    suffixes = [s.lower() for s in Path(text).suffixes[-2:]]
    return bool(suffixes) and (suffixes[-1] in TABLE_SUFFIXES or (len(suffixes) == 2 and suffixes[0] in CSV_SUFFIXES))


def load_user_table(path: str | Path, options: TableOptions = TableOptions()) -> UserTable:
    """Read ``path``, fit the encoding on it, encode it, and read the user's split if given."""
    if options.member_column and options.members_file:
        raise InputError("--members-file: give the split once, as --member-column or --members-file")
    path = Path(path)
    read_notes: list[str] = []
    frame = read_table(path, options.columns, options.no_header, options.na_values, options.sep, read_notes,
                       max_columns=options.max_features + len(options.drop) + 3,
                       single=[c for c in (options.label_column, options.member_column, options.id_column) if c])
    encoding, report = fit_encoding(frame, options.label_column, **options.encoding_options())
    x, y, rows = encode(frame, encoding)
    ids = record_ids(frame, options.id_column)
    kept_ids = [ids[r] for r in rows]
    membership = None
    if options.member_column:
        membership = membership_from_column(frame, options.member_column)[rows]
    elif options.members_file:
        membership = membership_from_ids(read_member_ids(options.members_file), ids)[rows]
    if membership is not None and (membership.all() or not membership.any()):
        which = "member" if membership.all() else "non-member"
        raise InputError(f"{options.member_column or '--members-file'}: every kept row is a {which}; "
                         "an audit compares members with non-members")
    dataset = Dataset(path.name, x, y, encoding.n_classes, tuple(str(c) for c in encoding.class_names))
    return UserTable(dataset, encoding, report, kept_ids, membership, rows, tuple(read_notes), frame)


def split_from_ids(ids: Sequence[str], members_file: str, n: int) -> np.ndarray:
    """bool [n] membership of the records whose ids (``ids``, one per record) are in ``members_file``."""
    membership = membership_from_ids(read_member_ids(members_file), ids)
    if len(membership) != n:
        raise InputError(f"--members-file: {len(membership)} record ids for {n} records")
    return membership

"""A user's table files: CSV / Parquet read into a DataFrame, and the user's own membership (a 0/1
column of the table, or a file of record ids).

Reading rules, the same for CSV and Parquet: a column name that repeats is made unique the way
pandas does it (``decile_score``, ``decile_score.1``), with a note; text values are stripped of
whitespace and those equal to one of ``na_values`` become missing (NaN). A CSV's first line is its
header unless ``no_header`` or ``columns`` is given; header-less columns are named ``columns`` or
col0..colN-1, and a first line that looks like a header (text over columns of numbers, or equal to
``columns``) is an error. The separator: ``sep`` when given ("whitespace" = runs of spaces / tabs);
else a tab for .tsv, and a comma, unless the first line has none: then a tab if it has one, else
runs of whitespace (UCI's space-separated .data files), with a note; a .data file whose first line
holds a number is read without a header (col0..), with a note. Record ids are an id column's
values, or without one the row positions 0..n-1 (the header line not counted).
"""
from __future__ import annotations

import bz2
import csv
import gzip
import lzma
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from miaudit.data.table_cells import DEFAULT_NA_VALUES, cell_values, shown
from miaudit.errors import InputError

CSV_SUFFIXES = (".csv", ".tsv", ".data", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
COMPRESSIONS = (".gz", ".bz2", ".xz", ".zip", ".zst")
SEPARATORS = {"whitespace": r"\s+", "space": r"\s+", "tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";"}
HEADER_PROBE = 50  # columns looked at to tell a header line from a record
MEMBER_WORDS = {"1": True, "0": False, "true": True, "false": False, "yes": True, "no": False}


def read_table(path: str | Path, columns: Sequence[str] | None = None, no_header: bool = False,
               na_values: Sequence[str] = DEFAULT_NA_VALUES, sep: str | None = None,
               notes: list[str] | None = None, max_columns: int | None = None,
               single: Sequence[str] = ()) -> pd.DataFrame:
    """The table in ``path`` (CSV, TSV, or Parquet by suffix; CSV may be compressed, e.g. .csv.gz).

    columns: names of the columns of a header-less CSV (its first line is a record), or new names of
    a Parquet file's columns (as many as it has); no_header: a header-less CSV named col0..colN-1;
    sep: the CSV separator (see the module's rules); notes: gets a line per renamed column or guess;
    max_columns: a CSV with more columns is refused after reading its first line (InputError);
    single: names that must not repeat (the label, member and id columns: which one would it be?).
    """
    notes = [] if notes is None else notes
    path = Path(path)
    source = str(path)
    suffixes = [s.lower() for s in path.suffixes[-2:]]
    suffix = suffixes[-2] if len(suffixes) == 2 and suffixes[-1] in COMPRESSIONS else path.suffix.lower()
    if suffix not in CSV_SUFFIXES + PARQUET_SUFFIXES:
        raise InputError(f"{source}: unknown table type {suffix or '(none)'!r} "
                         f"(use {', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES)})")
    if not path.is_file():
        raise InputError(f"{source}: file not found")
    if path.stat().st_size == 0:
        raise InputError(f"{source}: empty file")
    if columns is not None:
        columns = [str(c).strip() for c in columns]
        _unique(columns, f"{source}: --columns")
    if suffix in PARQUET_SUFFIXES:
        if sep is not None:
            raise InputError(f"{source}: --sep applies to CSV files (Parquet files have columns)")
        frame = _read_parquet(path, source, columns, no_header, notes, single)
    else:
        separator = _separator(path, source, suffix, sep, notes)
        frame = _read_csv(path, source, separator, columns, no_header, na_values, notes, max_columns, single)
    if len(frame) == 0:
        raise InputError(f"{source}: no records")
    return mark_missing(frame, na_values)


def mark_missing(frame: pd.DataFrame, na_values: Sequence[str] = DEFAULT_NA_VALUES) -> pd.DataFrame:
    """A copy of frame whose text columns are stripped and hold NaN where a value is one of na_values."""
    tokens = [str(v).strip() for v in na_values]
    text = [j for j, dtype in enumerate(frame.dtypes)
            if not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype))]
    if not text:
        return frame.copy()
    if len(text) <= 100:
        out = frame.copy()
        for j in text:
            out.isetitem(j, pd.Series(cell_values(frame.iloc[:, j], tokens)[0], index=frame.index, dtype=object))
        return out
    columns = dict(enumerate(column for _, column in frame.items()))  # one new frame: column by column is quadratic
    for j in text:
        columns[j] = pd.Series(cell_values(columns[j], tokens)[0], index=frame.index, dtype=object)
    return pd.DataFrame(columns, index=frame.index).set_axis(frame.columns, axis=1)


def _separator(path: Path, source: str, suffix: str, sep: str | None, notes: list[str]) -> str:
    """The separator to read ``path`` with (see the module's rules)."""
    if sep is not None:
        if not sep:
            raise InputError("--sep: empty separator (use e.g. ',', ';', tab or whitespace)")
        return SEPARATORS.get(sep.strip().lower(), sep) if sep.strip() else r"\s+"
    if suffix == ".tsv":
        return "\t"
    try:
        line = _first_line(path).strip()
    except (ValueError, OSError, UnicodeDecodeError, IndexError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return ","  # the reader below names the problem
    if "," in line or not line:
        return ","
    if "\t" in line:
        notes.append(f"{source}: no comma in the first line: read as tab-separated (--sep to choose)")
        return "\t"
    if len(line.split()) > 1:
        notes.append(f"{source}: no comma in the first line: read as whitespace-separated (--sep to choose)")
        return r"\s+"
    return ","


def _first_line(path: Path) -> str:
    """The file's first line (decompressed), without reading the rest: pandas takes seconds on a
    line of 80,000 fields."""
    suffix = path.suffix.lower()
    openers = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
    if suffix in (".zip", ".zst"):
        return str(pd.read_csv(path, header=None, nrows=1, dtype=str, sep="\x1f", keep_default_na=False,
                               quoting=csv.QUOTE_NONE, engine="python").iloc[0, 0])
    with openers.get(suffix, open)(path, "rt", encoding="utf-8-sig", newline="") as handle:
        return handle.readline().rstrip("\r\n")


def _header_fields(path: Path, sep: str, options: dict) -> list:
    """The fields of the first line, split as pandas would split them."""
    line = _first_line(path) if sep == r"\s+" or len(sep) == 1 else ""
    if line.strip() and sep == r"\s+":
        return line.split()
    if line.strip():
        return next(csv.reader([line], delimiter=sep, skipinitialspace=True), [])
    return pd.read_csv(path, header=None, nrows=1, dtype=str, **{**options, "na_values": []}).iloc[0].tolist()


def _read_csv(path: Path, source: str, sep: str, columns: list[str] | None, no_header: bool,
              na_values: Sequence[str], notes: list[str], max_columns: int | None = None,
              single: Sequence[str] = ()) -> pd.DataFrame:
    options = {"sep": sep, "skipinitialspace": True, "na_values": list(na_values), "keep_default_na": False,
               "index_col": False}
    if len(sep) == 1:
        options["low_memory"] = False
    try:
        head = _header_fields(path, sep, options)
        if max_columns is not None and len(head) > max_columns:
            raise InputError(f"{source}: {len(head)} columns, more than the {max_columns} that --max-features "
                             "allows (with the label, member, id and --drop columns); raise --max-features")
        if columns is None and not no_header and path.suffix.lower() == ".data" and _has_number(head):
            no_header = True  # UCI's .data files have no header line
            notes.append(f"{source}: the first line holds numbers ({', '.join(head[:4])}, ...): read as a record, "
                         f"columns named col0..col{len(head) - 1} (--columns to name them)")
        if columns is None and not no_header:
            names = [str(v).strip() if isinstance(v, str) and v.strip() else f"col{i}" for i, v in enumerate(head)]
            return pd.read_csv(path, header=0, names=unique_names(names, source, notes, single), **options)
        frame = pd.read_csv(path, header=None, **options)
    except pd.errors.EmptyDataError:
        raise InputError(f"{source}: empty file") from None
    except InputError:
        raise
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as err:
        raise InputError(f"{source}: cannot read the table ({str(err).strip().splitlines()[-1]})") from None
    if columns is None:
        _header_as_record(frame, source, "--no-header")
        return frame.set_axis([f"col{i}" for i in range(frame.shape[1])], axis=1)
    if len(columns) != frame.shape[1]:
        raise InputError(f"{source}: --columns names {len(columns)} columns, the file has {frame.shape[1]}")
    first = [str(v).strip() for v in frame.iloc[0]]
    if first == columns:
        raise InputError(f"{source}: the first line repeats --columns (the file has a header: leave out --columns)")
    _header_as_record(frame, source, "--columns")
    return frame.set_axis(columns, axis=1)


def _has_number(fields: Sequence) -> bool:
    return any(pd.notna(pd.to_numeric(str(v).strip(), errors="coerce")) for v in fields if str(v).strip())


def _header_as_record(frame: pd.DataFrame, source: str, flag: str) -> None:
    """InputError when the first line of a file read without a header looks like one: every value of
    it is text that is not a number, and below it some column holds only numbers."""
    if len(frame) < 2:
        return
    probe = frame.iloc[:, :HEADER_PROBE]
    first = probe.iloc[0].tolist()
    if not all(isinstance(v, str) and v.strip() and pd.isna(pd.to_numeric(v, errors="coerce")) for v in first):
        return
    for j in range(probe.shape[1]):
        rest = probe.iloc[1:, j].dropna()
        if len(rest) and pd.to_numeric(rest, errors="coerce").notna().all():
            shown_names = ", ".join(repr(str(v).strip()) for v in first[:4])
            raise InputError(f"{source}: the first line ({shown_names}, ...) looks like a header, not a record "
                             f"(column {j} holds numbers below it): leave out {flag}")


def _read_parquet(path: Path, source: str, columns: list[str] | None, no_header: bool,
                  notes: list[str], single: Sequence[str] = ()) -> pd.DataFrame:
    if no_header:
        raise InputError(f"{source}: --no-header applies to CSV files (Parquet files name their columns)")
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(f"{source}: reading Parquet needs pyarrow: pip install pyarrow") from None
    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as err:
        raise InputError(f"{source}: cannot read the Parquet file ({str(err).strip().splitlines()[0]})") from None
    names = [str(n) for n in table.schema.names]
    if columns is not None:
        if len(columns) != len(names):
            raise InputError(f"{source}: --columns names {len(columns)} columns, the file has {len(names)}")
        names = columns
    return table.rename_columns(unique_names(names, source, notes, single)).to_pandas()


def _unique(names: Sequence[str], source: str) -> None:
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            raise InputError(f"{source}: duplicate column name {name!r} (columns {seen[name]} and {i})")
        seen[name] = i


def unique_names(names: Sequence[str], source: str, notes: list[str], single: Sequence[str] = ()) -> list[str]:
    """names with each repeat renamed name.1, name.2, ... (skipping names taken), one note per name;
    InputError when a name in ``single`` repeats."""
    taken = set(names)
    out: list[str] = []
    seen: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        if name in seen:
            k = len(seen[name])
            while f"{name}.{k}" in taken:
                k += 1
            out.append(f"{name}.{k}")
            taken.add(out[-1])
        else:
            out.append(name)
        seen.setdefault(name, []).append(i)
    for name, where in seen.items():
        if len(where) > 1 and name in single:
            raise InputError(f"{source}: duplicate column name {name!r} (columns {', '.join(map(str, where))}): "
                             "the label, member and id columns must be named once")
        if len(where) > 1:
            renamed = ", ".join(out[i] for i in where[1:])
            notes.append(f"{source}: column {name!r} appears {len(where)} times (columns "
                         f"{', '.join(map(str, where))}): the repeats are named {renamed}")
    return out


def membership_from_column(frame: pd.DataFrame, column: str) -> np.ndarray:
    """bool [n] from a column of 0/1, true/false or yes/no (any case, whitespace stripped)."""
    if column not in frame.columns:
        raise InputError(f"{column}: member column not found (columns: {', '.join(map(str, frame.columns))})")
    values = frame[column]
    out = np.zeros(len(values), bool)
    for row, value in enumerate(values.to_numpy(object)):
        if isinstance(value, (bool, np.bool_)):
            out[row] = bool(value)
            continue
        if isinstance(value, (int, float, np.integer, np.floating)) and value in (0, 1):
            out[row] = value == 1
            continue
        key = value.strip().lower() if isinstance(value, str) else None
        if key not in MEMBER_WORDS:
            raise InputError(f"{column}: value {shown(value)} in row {row} is not 0/1, true/false or yes/no")
        out[row] = MEMBER_WORDS[key]
    return out


def record_ids(frame: pd.DataFrame, id_column: str | None = None) -> list[str]:
    """The frame's record ids as stripped text: the id column's values, or the row positions."""
    if id_column is None:
        return [str(i) for i in range(len(frame))]
    if id_column not in frame.columns:
        raise InputError(f"{id_column}: id column not found (columns: {', '.join(map(str, frame.columns))})")
    column = frame[id_column]
    if column.isna().any():
        raise InputError(f"{id_column}: missing record id in row {int(np.flatnonzero(column.isna())[0])}")
    if pd.api.types.is_float_dtype(column) and (column == column.round()).all():
        column = column.astype(np.int64)
    return [str(v).strip() for v in column]


def read_member_ids(path: str | Path) -> set[str]:
    """The record ids of the target's training members: a .csv file of one column (its first line is
    the header), or any other text file with one id per line (blank lines skipped)."""
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise InputError(f"{source}: members file not found")
    try:
        if path.suffix.lower() == ".csv":
            table = pd.read_csv(path, dtype=str, keep_default_na=False)
            if table.shape[1] != 1:
                raise InputError(f"{source}: a members file holds one column of record ids, found "
                                 f"{table.shape[1]} ({', '.join(map(str, table.columns))})")
            ids = [v.strip() for v in table.iloc[:, 0]]
        else:
            ids = [line.strip() for line in path.read_text().splitlines()]
    except pd.errors.EmptyDataError:
        ids = []
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as err:
        if isinstance(err, InputError):
            raise
        raise InputError(f"{source}: cannot read the members file ({str(err).strip().splitlines()[-1]})") from None
    found = {i for i in ids if i}
    if not found:
        raise InputError(f"{source}: no record ids in the members file")
    return found


def membership_from_ids(ids: Iterable[str], record_ids: Sequence, source: str = "--members-file") -> np.ndarray:
    """bool [n]: record i is a member when record_ids[i] is in ids. Record ids must be unique and
    every id must name a record (InputError naming the first that does not)."""
    keys = [str(r).strip() for r in record_ids]
    position: dict[str, int] = {}
    for row, key in enumerate(keys):
        if key in position:
            raise InputError(f"record ids: {key!r} appears in rows {position[key]} and {row} (ids must be unique)")
        position[key] = row
    wanted = {str(i).strip() for i in ids}
    unknown = sorted(wanted - position.keys())
    if unknown:
        example = ", ".join(keys[:3])
        raise InputError(f"{source}: id {unknown[0]!r} is not a record id ({len(unknown)} of {len(wanted)} ids "
                         f"unknown; record ids look like {example})")
    out = np.zeros(len(keys), bool)
    out[[position[i] for i in wanted]] = True
    return out

"""Which columns of a user's table become features: the user's ``--drop`` / ``--keep``, and the
default screening of columns that would only let a model memorise records or blow up the encoding.

The rule (applied to the rows with a label, before rows with missing values are dropped; a column
named in ``--keep`` is exempt and encoded as it is):
- a column with no value at all is dropped ("empty");
- a text column whose present values look like and parse as dates or timestamps (95% of a sample
  of 200, e.g. 2013-08-14, 2013-08-13 06:03:42, 08/14/2013) becomes a number: days since 1970-01-01
  (float, fractions of a day for times), missing where a value does not parse;
- a text column is dropped as "id-like" when it has at least ``MIN_DISTINCT`` distinct values and
  more than ``ID_RATIO`` of its present values are distinct (ids, names, case numbers, free text);
- a text column with more than ``MAX_CATEGORIES`` distinct values is dropped (one-hot would give a
  feature per value);
- a numeric column of at least ``MIN_DISTINCT`` distinct integers is dropped as "id-like" when its
  name says id (``id``, ``uid``, ``*_id``, ``index``, ...) or its values rise in file order and span
  less than 3 x the rows (a row counter, not a sorted measurement).
Then the encoded width (numeric and date columns 1 each, a categorical column its distinct count
with one-hot, 1 with ordinal) is checked against ``max_features`` before anything is allocated.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from miaudit.data.table_cells import as_numbers
from miaudit.errors import InputError

MIN_DISTINCT = 20
ID_RATIO = 0.5
MAX_CATEGORIES = 100
DATE_SHARE = 0.95
DATE_SAMPLE = 200
MAX_FEATURES = 20_000
ID_NAME = re.compile(r"^(id|uid|uuid|guid|index|idx|row|rowid|row_id|record_id|unnamed: ?\d+)$|(^id[_ .-])|([_ .-]id$)",
                     re.IGNORECASE)
_DATE_LOOK = re.compile(r"^\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$")
_EPOCH = np.datetime64("1970-01-01T00:00:00", "ns")
_DAY_NS = 86_400 * 10**9


@dataclass
class Screen:
    """The outcome: dropped columns (name -> (reason, who: "user" | "auto")), date columns."""

    dropped: dict[str, tuple[str, str]] = field(default_factory=dict)
    dates: list[str] = field(default_factory=list)

    def records(self) -> list[dict]:
        """results.json's ``data.dropped_columns``: column, reason, by (user / auto), how to keep it."""
        return [{"column": c, "reason": why, "by": by, **({"keep_with": f"--keep {c}"} if by == "auto" else {})}
                for c, (why, by) in self.dropped.items()]

    def notes(self) -> list[str]:
        """One console / report line per auto-dropped column and per date column."""
        lines = [f"column {c!r} not used: {why} (--keep {c} to encode it)"
                 for c, (why, by) in self.dropped.items() if by == "auto"]
        lines += [f"column {c!r} read as dates: days since 1970-01-01 (--keep {c} to one-hot its text)"
                  for c in self.dates]
        user = [c for c, (_, by) in self.dropped.items() if by == "user"]
        if user:
            lines.append(f"--drop: {len(user)} column{'s' * (len(user) > 1)} not used ({', '.join(user)})")
        return lines


def check_names(names: Sequence[str], given: Sequence[str], flag: str, protected: Sequence[str]) -> None:
    """InputError unless every name in ``given`` is a column and none is the label / member / id column."""
    for name in given:
        if name not in names:
            raise InputError(f"{flag}: no column {name!r} (columns: {', '.join(names)})")
        if name in protected:
            raise InputError(f"{flag}: {name!r} is the label, member or id column")


def screen_columns(parsed: dict, kinds: dict, labelled: np.ndarray, drop: Sequence[str] = (),
                   keep: Sequence[str] = ()) -> Screen:
    """Screen the feature columns. parsed: name -> (values [n], missing bool [n]) from cell_values;
    kinds: name -> "numeric" | "categorical"; labelled: bool [n], the rows with a label."""
    screen = Screen()
    for name in drop:
        screen.dropped[name] = ("--drop", "user")
    for name, (values, missing) in parsed.items():
        if name in screen.dropped or name in keep:
            continue
        present = values[labelled & ~missing]
        if not present.size:
            screen.dropped[name] = ("empty (no value in any row with a label)", "auto")
        elif kinds[name] == "numeric":
            if _numeric_id(name, as_numbers(present, np.zeros(present.size, bool))):
                screen.dropped[name] = (f"id-like ({present.size} distinct whole numbers)", "auto")
        elif looks_like_dates(present):
            screen.dates.append(name)
        else:
            distinct = len(pd.unique(present))
            if distinct >= MIN_DISTINCT and distinct > ID_RATIO * present.size:
                screen.dropped[name] = (f"id-like ({distinct} distinct values in {present.size} rows)", "auto")
            elif distinct > MAX_CATEGORIES:
                screen.dropped[name] = (f"{distinct} distinct values (more than {MAX_CATEGORIES} categories)",
                                        "auto")
    return screen


def _numeric_id(name: str, present: np.ndarray) -> bool:
    if present.size < MIN_DISTINCT or not np.all(present == np.round(present)):
        return False
    if len(np.unique(present)) != present.size:
        return False
    counter = np.all(np.diff(present) > 0) and np.ptp(present) < 3 * present.size  # 1, 2, 4, 5, ...: a row counter
    return bool(ID_NAME.search(name.strip())) or bool(counter)


def looks_like_dates(present: np.ndarray) -> bool:
    """Whether the text values present [m] are dates / timestamps (on a sample of DATE_SAMPLE)."""
    sample = present[np.linspace(0, present.size - 1, min(DATE_SAMPLE, present.size)).astype(int)]
    shaped = np.fromiter((bool(_DATE_LOOK.match(str(v))) for v in sample), bool, sample.size)
    if shaped.mean() < DATE_SHARE:
        return False
    return bool(np.isfinite(date_days(sample)).mean() >= DATE_SHARE)


def date_days(values: np.ndarray) -> np.ndarray:
    """float64 [n] days since 1970-01-01 of date / timestamp text (NaN where missing or unparseable)."""
    text = pd.Series(values, dtype=object)
    try:
        stamps = pd.to_datetime(text, errors="coerce", format="ISO8601")
    except (ValueError, TypeError):
        stamps = pd.Series(pd.NaT, index=text.index)
    if stamps.isna().sum() > text.isna().sum():  # not all ISO 8601: month/day/year and the like
        stamps = pd.to_datetime(text, errors="coerce", format="mixed")
    if getattr(stamps.dt, "tz", None) is not None:
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    ns = stamps.to_numpy("datetime64[ns]")
    out = (ns - _EPOCH).astype(np.int64) / _DAY_NS
    out[np.isnat(ns)] = np.nan
    return out


def check_width(parsed: dict, kinds: dict, used: Sequence[str], labelled: np.ndarray, categorical: str,
                max_features: int) -> int:
    """The encoded width of the ``used`` columns, counted from distinct values; InputError naming the
    widest columns when it is over ``max_features``."""
    widths = {}
    for name in used:
        values, missing = parsed[name]
        if kinds[name] == "categorical" and categorical == "onehot":
            widths[name] = len(pd.unique(values[labelled & ~missing]))
        else:
            widths[name] = 1
    total = sum(widths.values())
    if total > max_features:
        widest = sorted(widths.items(), key=lambda kv: -kv[1])[:3]
        shown = ", ".join(f"{c} {w}" for c, w in widest)
        raise InputError(f"table: the encoding would have {total} features, more than --max-features {max_features} "
                         f"(widest: {shown}); leave columns out with --drop, or raise --max-features")
    return total

"""Precomputed predictions ("signals in, audit out"): read, validate, turn into AttackInputs.

For users who ran the target and their reference models themselves. N audited records, C classes,
K reference models, Z population records (attacker data no model trained on).

npz file, one array per name:
  labels            [N] int, true labels in 0..C-1                                      required
  membership        [N] 0/1 (or bool), 1 = the record trained the target; both values  required
  target_logits     [N, C] the target's logits (log-probabilities are fine), or
  target_probabilities [N, C] its probabilities (rows sum to 1 within 1e-3)            one required
  reference_logits | reference_probabilities [K, N, C] each reference model on the audited records
  reference_masks   [K, N] 0/1, 1 = record n trained reference model k                 with references
  population_logits | population_probabilities [Z, C] the target on population records
  population_labels [Z] int                                                           with population
  population_reference_logits | population_reference_probabilities [K, Z, C]
                    each reference model on the population (needed with both references and population)

Parquet file, one row per record: columns labels, membership, target_logits (or _probabilities)
as a list of C numbers, reference_logits (or _probabilities) as a list of K lists of C numbers,
reference_masks as a list of K 0/1 values; rows with a true ``population`` column (optional) are
population records, whose labels / target / reference columns give population_labels,
population_logits and population_reference_logits (their membership and masks are ignored).

Probabilities become log-probabilities (floored at 1e-12). In the attack inputs the shadow records
are the audited records with the reference masks (pool mode).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from miaudit.attacks.registry import AttackSpec, attack_specs
from miaudit.errors import InputError
from miaudit.extras import require
from miaudit.models.contract import as_logits, one_line, probability_problem
from miaudit.signals.inputs import AttackInputs
from miaudit.signals.offer import NeedsOffer, SourceOffer
from miaudit.signals.source import MemorySource

SCORE_ARRAYS = ("target", "reference", "population", "population_reference")
KNOWN_ARRAYS = ("labels", "membership", "reference_masks", "population_labels", "record_ids",
                *(f"{s}_{kind}" for s in SCORE_ARRAYS for kind in ("logits", "probabilities")))


@dataclass(frozen=True)
class Predictions:
    """Validated model outputs on the audited (and population) records.

    target_logits float32 [N, C]; labels int64 [N]; membership bool [N]; reference_logits float32
    [K, N, C] and reference_in bool [K, N] (K may be 0); population_logits float32 [Z, C],
    population_labels int64 [Z], population_reference_logits float32 [K, Z, C] (Z may be 0).
    """

    target_logits: np.ndarray
    labels: np.ndarray
    membership: np.ndarray
    reference_logits: np.ndarray
    reference_in: np.ndarray
    population_logits: np.ndarray
    population_labels: np.ndarray
    population_reference_logits: np.ndarray
    record_ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        n, c = self.target_logits.shape
        k, z = self.reference_logits.shape[0], self.population_logits.shape[0]
        expected = {"labels": (n,), "membership": (n,), "reference_logits": (k, n, c), "reference_in": (k, n),
                    "population_logits": (z, c), "population_labels": (z,),
                    "population_reference_logits": (k, z, c)}
        for name, shape in expected.items():
            if getattr(self, name).shape != shape:
                raise InputError(f"predictions: {name} has shape {getattr(self, name).shape}, expected {shape}")

    @property
    def n_records(self) -> int:
        return int(self.target_logits.shape[0])

    @property
    def n_classes(self) -> int:
        return int(self.target_logits.shape[1])

    @property
    def n_reference(self) -> int:
        return int(self.reference_logits.shape[0])

    @property
    def n_population(self) -> int:
        return int(self.population_logits.shape[0])

    def attack_inputs(self) -> AttackInputs:
        """AttackInputs with one query per record; shadow records = the audited records (pool mode)."""
        reference = self.reference_logits[:, :, None, :]
        return AttackInputs(self.target_logits[:, None, :], self.labels, reference, self.reference_in,
                            reference, self.reference_in, self.labels, self.population_logits[:, None, :],
                            self.population_reference_logits[:, :, None, :], self.population_labels,
                            self.record_ids, self.record_ids)

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], source: str = "predictions") -> Predictions:
        """Validated Predictions from arrays named as in the module docstring; InputError
        "source: array: what is wrong" on the first problem."""
        return _Validator(dict(arrays), source).predictions()


class _Validator:
    def __init__(self, arrays: dict[str, np.ndarray], source: str) -> None:
        self.arrays, self.source = arrays, source

    def fail(self, name: str, problem: str):
        raise InputError(f"{self.source}: {name}: {problem}")

    def scores(self, stem: str, required: bool) -> tuple[str, np.ndarray] | None:
        """(array name, float32 logits) for stem_logits or stem_probabilities."""
        given = [f"{stem}_{kind}" for kind in ("logits", "probabilities") if f"{stem}_{kind}" in self.arrays]
        if len(given) > 1:
            self.fail(" and ".join(given), "give one of them, not both")
        if not given:
            if required:
                self.fail(f"{stem}_logits", f"missing (give {stem}_logits or {stem}_probabilities)")
            return None
        name = given[0]
        values = np.asarray(self.arrays[name])
        if not np.issubdtype(values.dtype, np.number) or np.iscomplexobj(values):
            self.fail(name, f"not real numbers (dtype {values.dtype})")
        if not np.isfinite(values).all():
            at = tuple(int(i) for i in np.argwhere(~np.isfinite(values))[0])
            self.fail(name, f"NaN or inf at index {at}")
        if name.endswith("_probabilities"):
            problem = probability_problem(values)
            if problem:
                self.fail(name, f"not probabilities: {problem}")
            return name, as_logits(values, "probabilities")
        return name, as_logits(values, "logits")

    def shape(self, name: str, values: np.ndarray, want: Sequence[int | None], meaning: str) -> None:
        if values.ndim != len(want) or any(w is not None and s != w for s, w in zip(values.shape, want)):
            text = "(" + ", ".join("?" if w is None else str(w) for w in want) + ")"
            self.fail(name, f"shape {tuple(values.shape)}, expected {text} = {meaning}")

    def binary(self, name: str, required: bool = True) -> np.ndarray | None:
        if name not in self.arrays:
            if required:
                self.fail(name, "missing")
            return None
        values = np.asarray(self.arrays[name])
        if values.dtype != bool:
            if not np.issubdtype(values.dtype, np.number) or not np.isin(values, (0, 1)).all():
                shown = values[~np.isin(values, (0, 1))].ravel()[:3] if np.issubdtype(values.dtype, np.number) else []
                self.fail(name, f"values must be 0 or 1 (found {', '.join(map(str, shown)) or values.dtype})")
        return values.astype(bool)

    def labels(self, name: str, n: int, n_classes: int, of: str) -> np.ndarray:
        if name not in self.arrays:
            self.fail(name, f"missing (needed with {of})")
        values = np.asarray(self.arrays[name])
        self.shape(name, values, (n,), f"[{'N' if name == 'labels' else 'Z'}] from {of}")
        if not np.issubdtype(values.dtype, np.number) or not np.array_equal(values, np.round(values)):
            self.fail(name, "not integers")
        if len(values) and (values.min() < 0 or values.max() >= n_classes):
            self.fail(name, f"values must lie in 0..{n_classes - 1} (C = {n_classes} classes), "
                            f"found {values.min():g}..{values.max():g}")
        return values.astype(np.int64)

    def predictions(self) -> Predictions:
        unknown = sorted(set(self.arrays) - set(KNOWN_ARRAYS))
        if unknown:
            self.fail(", ".join(unknown), f"unknown array name; known: {', '.join(KNOWN_ARRAYS)}")
        target_name, target = self.scores("target", required=True)
        if target.ndim != 2 or target.shape[1] < 2 or len(target) == 0:
            self.fail(target_name, f"shape {target.shape}, expected (N, C) with N >= 1 records and C >= 2 classes")
        n, c = target.shape
        labels = self.labels("labels", n, c, target_name)
        membership = self.binary("membership")
        self.shape("membership", membership, (n,), f"[N] from {target_name}")
        if membership.all() or not membership.any():
            self.fail("membership", f"all {n} records are {'members' if membership.all() else 'non-members'}; "
                                    "the audit needs members and non-members")
        reference = self.scores("reference", required=False)
        masks = self.binary("reference_masks", required=reference is not None)
        if reference is None:
            if masks is not None:
                self.fail("reference_masks", "given without reference_logits")
            reference, masks = ("reference_logits", np.zeros((0, n, c), np.float32)), np.zeros((0, n), bool)
        if masks.ndim != 2:
            self.fail("reference_masks", f"shape {masks.shape}, expected (K, {n}) = [K, N]")
        k = masks.shape[0]
        self.shape("reference_masks", masks, (k, n), f"[K, N], N from {target_name}")
        self.shape(reference[0], reference[1], (k, n, c),
                   f"[K, N, C], K from reference_masks, N and C from {target_name}")
        population = self.scores("population", required=False)
        population_reference = self.scores("population_reference", required=False)
        if population is None:
            if population_reference is not None:
                self.fail(population_reference[0], "given without population_logits")
            if "population_labels" in self.arrays:
                self.fail("population_labels", "given without population_logits")
            population = ("population_logits", np.zeros((0, c), np.float32))
        pop_name, pop = population
        self.shape(pop_name, pop, (None, c), f"[Z, C], C from {target_name}")
        z = len(pop)
        pop_labels = self.labels("population_labels", z, c, pop_name) if z else np.zeros(0, np.int64)
        if population_reference is None:
            if k and z:
                self.fail("population_reference_logits", "missing: with reference models and population "
                          "records, give each reference model's outputs on the population [K, Z, C]")
            population_reference = ("population_reference_logits", np.zeros((k, z, c), np.float32))
        if population_reference[1].size and not k:
            self.fail(population_reference[0], "given without reference_logits")
        self.shape(population_reference[0], population_reference[1], (k, z, c),
                   f"[K, Z, C], K from reference_masks, Z from {pop_name}")
        return Predictions(target, labels, membership, reference[1], masks, pop, pop_labels, population_reference[1],
                           self.record_ids(n))

    def record_ids(self, n: int) -> np.ndarray | None:
        """Optional int64 [N] distinct record identities (attacks that subsample draw by them)."""
        if "record_ids" not in self.arrays:
            return None
        values = np.asarray(self.arrays["record_ids"])
        self.shape("record_ids", values, (n,), "[N], one id per audited record")
        if values.dtype.kind not in "iu":
            self.fail("record_ids", f"not integers (dtype {values.dtype})")
        if np.unique(values).size != n:
            self.fail("record_ids", "ids must be distinct")
        return values.astype(np.int64)


def _list_column(table, name: str, source: str) -> np.ndarray:
    """A Parquet column of numbers or (nested) equal-length lists as an array [rows, *list lengths]."""
    import pyarrow as pa
    import pyarrow.compute as pc

    column = table.column(name).combine_chunks()
    rows, shape = len(column), []
    while pa.types.is_list(column.type) or pa.types.is_large_list(column.type) or \
            pa.types.is_fixed_size_list(column.type):
        lengths = pc.list_value_length(column)
        if lengths.null_count or (len(lengths) and pc.min_max(lengths)["min"] != pc.min_max(lengths)["max"]):
            raise InputError(f"{source}: {name}: rows hold lists of different lengths (or nulls)")
        shape.append(lengths[0].as_py() if len(lengths) else 0)
        column = column.flatten()
    if column.null_count:
        raise InputError(f"{source}: {name}: null values")
    return column.to_numpy(zero_copy_only=False).reshape(rows, *shape)


def _parquet_arrays(path: Path) -> dict[str, np.ndarray]:
    """The arrays of the module docstring from a Parquet file of one row per record."""

    pq = require("pyarrow.parquet", "files", field=path.name)
    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow raises ArrowInvalid / OSError for unreadable files
        raise InputError(f"{path.name}: not a readable Parquet file ({one_line(err)})") from None
    names = set(table.column_names) - {"population"}
    sets = {"": table}
    if "population" in table.column_names:
        flag = _list_column(table, "population", path.name).astype(bool)
        sets = {"": table.filter(~flag), "population_": table.filter(flag)}
    arrays: dict[str, np.ndarray] = {}
    for prefix, part in sets.items():
        for name in sorted(names):
            if prefix and name in ("membership", "reference_masks"):
                continue
            values = _list_column(part, name, path.name)
            if name.startswith("reference_"):  # stored [rows, K, ...], used [K, rows, ...]
                values = np.moveaxis(values, 1, 0) if values.ndim > 1 else values
            out = prefix + name.removeprefix("target_") if prefix else name
            if prefix and name == "labels":
                out = "population_labels"
            arrays[out] = values
    if "population_" in sets and len(sets["population_"]) == 0:
        arrays = {k: v for k, v in arrays.items() if not k.startswith("population")}
    return arrays


def load_predictions(path: str | Path) -> Predictions:
    """Validated Predictions from an .npz or .parquet file laid out as in the module docstring."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
        except Exception as err:  # zipfile / ValueError for unreadable or object arrays
            raise InputError(f"{path.name}: not a readable npz file of numeric arrays ({one_line(err)})") from None
    elif path.suffix.lower() == ".parquet":
        arrays = _parquet_arrays(path)
    else:
        raise InputError(f"{path.name}: predictions must be an .npz or .parquet file")
    return Predictions.from_arrays(arrays, path.name)


def save_predictions(predictions: Predictions, path: str | Path) -> Path:
    """Write ``predictions`` as an .npz file that ``load_predictions`` reads back (logits arrays)."""
    path = Path(path)
    p = predictions
    arrays = {"target_logits": p.target_logits, "labels": p.labels, "membership": p.membership}
    if p.record_ids is not None:
        arrays["record_ids"] = p.record_ids
    if p.n_reference:
        arrays |= {"reference_logits": p.reference_logits, "reference_masks": p.reference_in}
    if p.n_population:
        arrays |= {"population_logits": p.population_logits, "population_labels": p.population_labels}
        if p.n_reference:
            arrays["population_reference_logits"] = p.population_reference_logits
    np.savez_compressed(path, **arrays)
    return path


def unmet_need(predictions: Predictions, spec: AttackSpec) -> str | None:
    """Why ``spec`` cannot run on these predictions ("name: needs ..."), or None: outputs only (no model to
    query or read, no records); shokri-* attacks need reference masks with both IN and OUT records."""
    has_in = bool(predictions.reference_in.any())
    need = spec.unmet_need_in(SourceOffer(predictions.n_reference, has_in, predictions.n_population))
    if need is None and spec.name.startswith("shokri-") and predictions.reference_in.all():
        need = f"{spec.name}: needs reference masks with OUT records (0s) to train its attack model"
    if need is None and spec.name.startswith("shokri-") and not has_in:
        need = f"{spec.name}: needs reference masks with IN records (1s) to train its attack model"
    return need


def runnable_attacks(predictions: Predictions, names: Sequence[str] = ("all",)) -> tuple[list, list[str]]:
    """(specs of the attacks ``names`` that these predictions support, one note per attack skipped).

    Threshold attacks need only the target's outputs; shokri-* reference outputs with both IN and OUT
    records; lira-offline references; lira-online references trained on audited records; population
    and rmia population records (rmia also the references' outputs on them). Attacks that query a
    model cannot run on predictions (:func:`unmet_need`).
    """
    runnable, skipped = [], []
    for spec in attack_specs(list(names)):
        need = unmet_need(predictions, spec)
        (skipped if need else runnable).append(need or spec)
    return runnable, skipped


class PredictionsSource(MemorySource):
    """Precomputed outputs (``--predictions``): no model to query or read, no records; what else each
    attack needs is decided by :func:`unmet_need` (e.g. shokri-* masks)."""

    def __init__(self, predictions: Predictions) -> None:
        super().__init__(predictions.attack_inputs())
        self.predictions = predictions
        p = predictions
        self._offer = SourceOffer(p.n_reference, bool(p.reference_in.any()), p.n_population)

    @property
    def offer(self) -> SourceOffer:
        return self._offer

    def unmet_need(self, spec: NeedsOffer) -> str | None:
        return unmet_need(self.predictions, spec)

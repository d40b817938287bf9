"""The signal matrix on disk: a Zarr group in a directory, chunked by record blocks, read one block
of records (all K models) at a time (docs/scale-out.md, "Chunking of the signal matrix on disk").

Arrays (K reference models, N audited records, Z population records, C classes; pool mode, Q = 1):
  reference_logits             [K, N, C]  chunks (16 models, ``chunk`` records, C), ``dtype``
  target_logits                [N, C]     chunks (``chunk``, C), ``dtype``
  population_reference_logits  [K, Z, C]  ``dtype``; population_target_logits [Z, C]
  reference_in                 [K, N]     bool, chunks (16, ``chunk``)
  labels [N] int64, record_ids [N] int64, population_labels [Z] int64
dtype is float32 (default) or float16; reads give float32. A row of 16 models (one Ray shard) can be
written on its own (:meth:`SignalStore.write_models`), a block of records for all models too
(:meth:`SignalStore.write_records`). zarr is an optional extra: pip install miaudit[zarr].
"""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from miaudit.errors import InputError
from miaudit.extras import require
from miaudit.signals.inputs import AttackInputs

DTYPES = ("float32", "float16")
MODEL_CHUNK = 16
"""Models per chunk along K: one chunk row is one reference-model shard."""


def _zarr():

    return require("zarr", "zarr", "signal_chunk")


def check_layout(chunk: int, dtype: str) -> None:
    """InputError for a record chunk < 1 or a dtype not in DTYPES."""
    if not isinstance(chunk, (int, np.integer)) or isinstance(chunk, bool) or chunk < 1:
        raise InputError(f"signal_chunk: records per chunk must be an integer >= 1, got {chunk!r}")
    if dtype not in DTYPES:
        raise InputError(f"signal_dtype: must be one of {', '.join(DTYPES)}, got {dtype!r}")


def _check_writable(path: Path) -> None:
    """InputError unless path is absent, an empty directory or a miaudit signal store (Zarr's "w"
    mode empties the directory: nothing else may be lost)."""
    if not path.exists():
        return
    if not path.is_dir():
        raise InputError(f"signal_store: {path} is a file; name a new or empty directory")
    meta = path / "zarr.json"
    if any(path.iterdir()) and not (meta.is_file() and "miaudit-signals" in meta.read_text(errors="replace")):
        raise InputError(f"signal_store: {path} is not empty and holds no signal store; name a new or empty "
                         "directory")


def _remove_store(path: Path) -> None:
    """Delete an earlier store at ``path``: its group metadata and its arrays (sub-directories with a
    zarr.json), nothing else; files the user keeps beside it stay (Zarr's "w" mode would empty the folder)."""
    if not (path / "zarr.json").is_file():
        return
    for entry in path.iterdir():
        if entry.is_dir() and (entry / "zarr.json").is_file():
            shutil.rmtree(entry)
    (path / "zarr.json").unlink()


class SignalStore:
    """A signal matrix in a Zarr group at ``path`` (see the module docstring for its arrays)."""

    def __init__(self, group, path: Path):
        self.group, self.path = group, Path(path)
        self._population: tuple[np.ndarray, ...] | None = None
        self.cache: dict = {}
        """What streamed attacks derive from the whole store once (first-pass statistics)."""
        self.records = self.population_records = self.target_model = self.reference_models = None
        """What the audit holds in memory beside the store (:meth:`attach`); never written to disk."""

    def attach(self, records: np.ndarray | None, population_records: np.ndarray | None, target_model=None,
               reference_models=None) -> None:
        """The audited records [N, ...], the population's [Z, ...], the target model and the reference
        models (as the attacker queries them), held in memory by the audit: each chunk's AttackInputs then
        carries its records and the models, so attacks that read the records, query the models or take
        their gradients stream too (attacks/streamed/records.py)."""
        self.records, self.population_records = records, population_records
        self.target_model, self.reference_models = target_model, reference_models

    @classmethod
    def create(cls, path: str | Path, n_models: int, n_records: int, n_population: int, n_classes: int,
               chunk: int, dtype: str = "float32") -> SignalStore:
        """An empty store (logits zero, masks False) of these sizes at ``path``: a new or empty
        directory, or an earlier signal store (overwritten); anything else is an InputError."""
        check_layout(chunk, dtype)
        zarr = _zarr()
        _check_writable(Path(path))
        _remove_store(Path(path))
        group = zarr.open_group(str(path), mode="a")
        k, n, z, c = n_models, n_records, n_population, n_classes
        mk, rc = max(1, min(MODEL_CHUNK, k)), max(1, min(chunk, n))
        arrays = {"reference_logits": ((k, n, c), (mk, rc, c), dtype),
                  "target_logits": ((n, c), (rc, c), dtype),
                  "population_reference_logits": ((k, z, c), (mk, max(1, z), c), dtype),
                  "population_target_logits": ((z, c), (max(1, z), c), dtype),
                  "reference_in": ((k, n), (mk, rc), "bool"),
                  "labels": ((n,), (rc,), "int64"), "record_ids": ((n,), (rc,), "int64"),
                  "population_labels": ((z,), (max(1, z),), "int64")}
        for name, (shape, chunks, dt) in arrays.items():
            group.create_array(name, shape=shape, chunks=chunks, dtype=dt, compressors=None, fill_value=0)
        group.attrs.update({"chunk": int(chunk), "dtype": dtype, "layout": "miaudit-signals-1"})
        return cls(group, Path(path))

    @classmethod
    def open(cls, path: str | Path, writable: bool = False) -> SignalStore:
        """An existing store, read-only (or writable, e.g. by the Ray task writing its shard's rows)."""
        zarr = _zarr()
        if not Path(path, "zarr.json").exists():
            raise InputError(f"signal_store: {path} holds no signal store")
        return cls(zarr.open_group(str(path), mode="r+" if writable else "r"), Path(path))

    # -- sizes ---------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        """(K, N, C)."""
        return tuple(int(s) for s in self.group["reference_logits"].shape)

    @property
    def n_population(self) -> int:
        return int(self.group["population_labels"].shape[0])

    @property
    def chunk(self) -> int:
        return int(self.group.attrs["chunk"])

    @property
    def dtype(self) -> str:
        return str(self.group.attrs["dtype"])

    def blocks(self) -> list[tuple[int, int]]:
        """(start, stop) of each record chunk, in order; the last may be partial."""
        n = self.shape[1]
        return [(i, min(i + self.chunk, n)) for i in range(0, n, self.chunk)]

    def nbytes(self) -> int:
        """Bytes the store takes on disk (its files)."""
        return sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())

    def describe(self) -> dict:
        """The results.json "signals" block."""
        k, n, c = self.shape
        return {"store": str(self.path), "format": "zarr", "shape": {"models": k, "records": n, "classes": c,
                                                                  "population": self.n_population},
                "chunk": self.chunk, "model_chunk": MODEL_CHUNK, "dtype": self.dtype, "bytes": self.nbytes(),
                "chunks_read": len(self.blocks())}

    # -- writing -------------------------------------------------------------------------------
    def write_meta(self, labels: np.ndarray, record_ids: np.ndarray, reference_in: np.ndarray) -> None:
        """Labels and ids [N] and the reference membership masks [K, N]."""
        self.group["labels"][:] = np.asarray(labels, np.int64)
        self.group["record_ids"][:] = np.asarray(record_ids, np.int64)
        self.group["reference_in"][:] = np.asarray(reference_in, bool)

    def write_population(self, target_logits: np.ndarray, reference_logits: np.ndarray | None,
                         labels: np.ndarray) -> None:
        """The population records: target logits [Z, C], reference logits [K, Z, C] (None: written by
        the shards, write_models), labels [Z]."""
        self.group["population_target_logits"][:] = target_logits
        if reference_logits is not None:
            self.group["population_reference_logits"][:] = reference_logits
        self.group["population_labels"][:] = np.asarray(labels, np.int64)
        self._population = None

    def write_records(self, start: int, target_logits: np.ndarray, reference_logits: np.ndarray | None) -> None:
        """One block of records from ``start``: target [b, C] and every reference model's [K, b, C]
        (None: the reference rows are written by their shards, write_models)."""
        stop = start + len(target_logits)
        self.group["target_logits"][start:stop] = target_logits
        if reference_logits is not None:
            self.group["reference_logits"][:, start:stop] = reference_logits
        self.cache.clear()

    def write_models(self, k0: int, logits: np.ndarray | None, population_logits: np.ndarray | None = None,
                     start: int = 0) -> None:
        """Rows k0.. of the reference models (a shard): logits [m, b, C] on records start.. (and [m, Z, C]
        on the population). Shards whose rows are whole 16-model chunk rows never write the same file."""
        if logits is not None:
            self.group["reference_logits"][k0:k0 + len(logits), start:start + logits.shape[1]] = logits
        self.cache.clear()
        if population_logits is not None:
            self.group["population_reference_logits"][k0:k0 + len(population_logits)] = population_logits
            self._population = None

    # -- reading -------------------------------------------------------------------------------
    def population(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(target logits [Z, C], reference logits [K, Z, C] float32, labels [Z]), read once."""
        if self._population is None:
            g = self.group
            self._population = (np.asarray(g["population_target_logits"][:], np.float32),
                                np.asarray(g["population_reference_logits"][:], np.float32),
                                np.asarray(g["population_labels"][:]))
        return self._population

    def reference_in(self, start: int, stop: int) -> np.ndarray:
        return np.asarray(self.group["reference_in"][:, start:stop])

    def read_block(self, start: int, stop: int) -> AttackInputs:
        """Records start:stop against all K models as AttackInputs (Q = 1, pool mode: the shadow
        records are these records), with the whole population."""
        g = self.group
        target = np.asarray(g["target_logits"][start:stop], np.float32)[:, None]
        refs = np.asarray(g["reference_logits"][:, start:stop], np.float32)[:, :, None]
        ref_in, labels = self.reference_in(start, stop), np.asarray(g["labels"][start:stop])
        ids = np.asarray(g["record_ids"][start:stop])
        pop_t, pop_r, pop_y = self.population()
        records = None if self.records is None else self.records[start:stop]
        return AttackInputs(target, labels, refs, ref_in, refs, ref_in, labels, pop_t[:, None],
                            pop_r[:, :, None], pop_y, ids, ids, records, self.target_model, self.reference_models,
                            population_records=self.population_records)

    def chunks(self) -> Iterator[tuple[int, int, AttackInputs]]:
        """(start, stop, inputs) of every record chunk, one in memory at a time."""
        for start, stop in self.blocks():
            yield start, stop, self.read_block(start, stop)

    def labels(self) -> np.ndarray:
        return np.asarray(self.group["labels"][:])

    def record_ids(self) -> np.ndarray:
        return np.asarray(self.group["record_ids"][:])

    def to_inputs(self) -> AttackInputs:
        """The whole matrix in memory (tests and small audits): the in-memory AttackInputs."""
        return self.read_block(0, self.shape[1])


def store_inputs(inputs: AttackInputs, path: str | Path, chunk: int, dtype: str = "float32") -> SignalStore:
    """Write in-memory pool-mode AttackInputs with Q = 1 to a new store, record block by block (its
    records and target model, if any, attached)."""
    if inputs.target_logits.shape[1] != 1:
        raise InputError(f"signal_chunk: the store holds one query per record, got {inputs.target_logits.shape[1]}")
    k, n, c = inputs.n_reference, inputs.n_records, inputs.n_classes
    store = SignalStore.create(path, k, n, len(inputs.population_labels), c, chunk, dtype)
    ids = np.arange(n) if inputs.record_ids is None else inputs.record_ids
    store.write_meta(inputs.labels, ids, inputs.reference_in)
    store.write_population(inputs.population_target_logits[:, 0], inputs.population_reference_logits[:, :, 0],
                           inputs.population_labels)
    for start, stop in store.blocks():
        store.write_records(start, inputs.target_logits[start:stop, 0], inputs.reference_logits[:, start:stop, 0])
    store.attach(inputs.records, inputs.population_records, inputs.target_model, inputs.reference_models)
    return store

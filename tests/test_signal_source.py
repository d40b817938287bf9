"""One attacks stage over three signal sources (in memory, a chunked store, a predictions file), and the
import facts of issue 23 for signals/ and audit/: signals/ reads no audit config, no import cycle."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from tests.test_streaming_attacks import synthetic_inputs

import miaudit
from miaudit.attacks.registry import ATTACKS, CANNOT_STREAM
from miaudit.attacks.streamed import STREAMED
from miaudit.audit.attack_stage import AttackSettings, attack_outcomes, runnable
from miaudit.audit.config import make_config
from miaudit.signals.source import MemorySource, StoreSource
from miaudit.signals.store import store_inputs
from miaudit.targets.predictions import Predictions, PredictionsSource

PACKAGE = Path(miaudit.__file__).resolve().parent
SETTINGS = AttackSettings.of(make_config(n_jobs=1))


def predictions_of(inputs, member) -> Predictions:
    return Predictions(inputs.target_logits[:, 0], inputs.labels, member, inputs.reference_logits[:, :, 0],
                       inputs.reference_in, inputs.population_target_logits[:, 0],
                       inputs.population_labels, inputs.population_reference_logits[:, :, 0], inputs.record_ids)


def test_the_three_sources_give_the_same_outcomes(tmp_path):
    inputs, member = synthetic_inputs(k=4, n=120, z=40, c=3, seed=3)
    specs = [ATTACKS[n] for n in ("lira-online", "rmia", "population")]
    memory = MemorySource(inputs)
    store = StoreSource(store_inputs(inputs, tmp_path / "s", chunk=32), memory.target_correct)
    from_file = PredictionsSource(predictions_of(inputs, member))
    runs = [attack_outcomes(s, specs, SETTINGS, member) for s in (memory, store, from_file)]
    for outcomes in runs[1:]:
        assert [o.name for o in outcomes] == [s.name for s in specs]
        for got, want in zip(outcomes, runs[0]):
            np.testing.assert_allclose(got.scores, want.scores, rtol=1e-9, atol=1e-12)
            assert got.queries == want.queries == 120 + (40 if want.name != "lira-online" else 0)
    assert store.describe()["chunks_read"] == 4 and store.describe()["kept"] is True and memory.describe() == {}
    assert store.offer.streamed and (store.offer.n_references, store.offer.n_population) == (4, 40)
    np.testing.assert_array_equal(store.record_ids, inputs.record_ids)


def test_runnability_is_asked_of_the_source(tmp_path):
    inputs, member = synthetic_inputs(k=4, n=60, z=20, c=3, seed=4)
    unstreamed = next(n for n in ATTACKS if n not in STREAMED)
    specs = [ATTACKS[n] for n in (unstreamed, "lira-online", "label-only-gap")]
    store = StoreSource(store_inputs(inputs, tmp_path / "s", chunk=32), np.ones(60, bool))
    ok, why = runnable(store, specs)
    assert [s.name for s in ok] == ["lira-online", "label-only-gap"]  # the records and model are attached
    assert why[0].startswith(f"{unstreamed}: {CANNOT_STREAM}")
    specs = [ATTACKS[n] for n in ("threshold-loss", "lira-online", "label-only-gap")]
    ok, why = runnable(PredictionsSource(predictions_of(inputs, member)), specs)
    assert [s.name for s in ok] == ["threshold-loss", "lira-online"]
    assert why == ["label-only-gap: needs the audited model itself to query (not only its predictions)"]
    all_in = predictions_of(inputs, member)
    all_in = Predictions(**{**all_in.__dict__, "reference_in": np.ones_like(all_in.reference_in)})
    assert runnable(PredictionsSource(all_in), [ATTACKS["shokri-lr"]])[1] == [
        "shokri-lr: needs reference masks with OUT records (0s) to train its attack model"]


def imports_of(path: Path, module: str) -> set[str]:
    """The miaudit modules ``path`` imports, at any scope (``from a import b``: a.b when a module, else a)."""
    out = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            out |= {f"{base}.{a.name}" for a in node.names} | {base}
    return {m for m in out if m.startswith("miaudit")}


def module_graph() -> dict[str, set[str]]:
    files = {".".join(("miaudit", *p.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__"): p
             for p in PACKAGE.rglob("*.py")}
    return {m: {t for t in imports_of(p, m) if t in files and t != m} for m, p in files.items()}


def test_signals_read_no_audit_config():
    graph = module_graph()
    assert {(m, t) for m, ts in graph.items() for t in ts
            if m.startswith("miaudit.signals") and t.startswith("miaudit.audit")} == set()


@pytest.mark.parametrize("start", ["miaudit.audit.run", "miaudit.audit.predictions", "miaudit.signals.matrix"])
def test_no_import_cycle_through_the_flows(start):
    """No chain of imports (function-level ones too) leads from ``start`` back to it."""
    graph, seen, todo = module_graph(), set(), list(module_graph()[start])
    while todo:
        m = todo.pop()
        assert m != start, f"{start} imports itself through {sorted(seen)}"
        if m not in seen:
            seen.add(m)
            todo.extend(graph.get(m, ()))

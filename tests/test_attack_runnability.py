"""One runnability check (AttackSpec.unmet_need_in over a SourceOffer): its answers, and the adapters
that the plan, the run, the ladder and a predictions file reach it through."""
from __future__ import annotations

import itertools

import numpy as np

from miaudit.attacks import streamed
from miaudit.attacks.registry import ATTACKS, CANNOT_STREAM
from miaudit.signals.inputs import AttackInputs
from miaudit.signals.offer import SourceOffer

EVERYTHING = SourceOffer(8, True, 100, has_model=True, white_box=True, has_reference_models=True, has_records=True)


def test_everything_offered_runs_every_attack_and_nothing_offered_none():
    assert all(spec.unmet_need_in(EVERYTHING) is None for spec in ATTACKS.values())
    bare = SourceOffer(0, False, 0)
    assert [s.name for s in ATTACKS.values() if s.unmet_need_in(bare) is None] == [
        "threshold-confidence", "threshold-loss", "threshold-entropy", "threshold-modified-entropy"]


def test_the_messages_name_what_is_missing():
    offer = SourceOffer(0, False, 0)
    assert ATTACKS["lira-offline"].unmet_need_in(offer) == \
        "lira-offline: needs at least 1 reference (shadow) model (--reference-models)"
    assert ATTACKS["lira-online"].unmet_need_in(SourceOffer(4, False, 0)) == \
        "lira-online: needs reference models trained on the audited records (--reference-data pool)"
    assert ATTACKS["population"].unmet_need_in(offer) == \
        "population: needs population records (attacker data no model trained on)"
    assert ATTACKS["label-only-gap"].unmet_need_in(offer) == \
        "label-only-gap: needs the audited model itself to query (not only its predictions)"
    assert ATTACKS["gradient-norm"].unmet_need_in(offer) == \
        "gradient-norm: needs a torch target whose parameters it can read (white-box)"
    assert ATTACKS["qmia"].unmet_need_in(SourceOffer(0, False, 100, has_model=True)) == \
        "qmia: needs the audited and population records themselves (not only predictions)"
    no_models = SourceOffer(4, True, 100, has_model=True, white_box=True, has_records=True)
    assert ATTACKS["label-only-noise-lira"].unmet_need_in(no_models) == \
        "label-only-noise-lira: needs the reference models themselves (not only their predictions)"


def test_streamed_signals_run_only_the_streamed_attacks_and_say_why_not():
    offer = SourceOffer(8, True, 100, has_model=True, white_box=True, has_reference_models=True, has_records=True,
                        streamed=True)
    runs = [s.name for s in ATTACKS.values() if s.unmet_need_in(offer) is None]
    assert runs == [name for name in ATTACKS if name in streamed.STREAMED]
    name = "label-only-noise"
    why = ATTACKS[name].unmet_need_in(offer)
    assert why.startswith(f"{name}: {CANNOT_STREAM}: ") and len(why) > len(f"{name}: {CANNOT_STREAM}: ")
    reasons = getattr(streamed, "NOT_STREAMED", {})
    if name in reasons:
        assert why.endswith(reasons[name])


def test_the_adapters_give_the_checks_answers():
    """unmet_need (an audit about to run) and unmet_need_of (signals in memory) are the same check."""
    for k, has_in, z, model, white in itertools.product((0, 4), (False, True), (0, 50), (False, True), (False, True)):
        offer = SourceOffer(k, has_in, z, model, white, has_reference_models=True, has_records=model)
        for spec in ATTACKS.values():
            assert spec.unmet_need(k, has_in, z, model, white) == spec.unmet_need_in(offer)
    rng = np.random.default_rng(0)
    n, k, z = 20, 4, 10
    ref_in = np.zeros((k, n), bool)
    ref_in[:2, :10] = ref_in[2:, 10:] = True
    logits = rng.normal(size=(k, n, 1, 3)).astype(np.float32)
    inputs = AttackInputs(logits[0], rng.integers(0, 3, n), logits, ref_in, logits, ref_in, rng.integers(0, 3, n),
                          logits[0, :z], logits[:, :z], rng.integers(0, 3, z))
    offer = SourceOffer.of_inputs(inputs)
    assert offer == SourceOffer(k, True, z)  # signals only: no model, records or reference models
    for spec in ATTACKS.values():
        assert spec.unmet_need_of(inputs) == spec.unmet_need_in(offer)

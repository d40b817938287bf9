"""Reference models come from the cache on a second audit, and an interrupted audit resumes."""
from __future__ import annotations

import numpy as np
import pytest

import miaudit
import miaudit.models.stack as stack
from miaudit.audit.config import make_config
from miaudit.audit.plan import make_plan
from miaudit.models.registry import fit_single, model_spec

SMALL = dict(dataset="digits", target="mlp", members=200, population=300, epochs=3, seed=1,
             attacks=["threshold-loss", "lira-online", "rmia"], progress=False)


def scores(result):
    return {a.name: a.scores for a in result.attacks}


def test_second_audit_trains_no_reference_model(tmp_path):
    first = miaudit.audit(reference_models=4, cache_dir=str(tmp_path), **SMALL)
    second = miaudit.audit(reference_models=4, cache_dir=str(tmp_path), **SMALL)
    assert first.timing["reference_models_trained"] == 4
    assert second.timing["reference_models_trained"] == 0
    for name, s in scores(first).items():
        np.testing.assert_array_equal(s, scores(second)[name])


def test_interrupted_audit_resumes_with_the_same_numbers(tmp_path, monkeypatch):
    fresh = miaudit.audit(reference_models=4, cache=False, **SMALL)

    real_train = stack.train_mlp_stack
    calls = []

    def dies_on_second_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the user hits Ctrl-C while the second chunk trains
        return real_train(*args, **kwargs)

    monkeypatch.setattr(stack, "train_mlp_stack", dies_on_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        miaudit.audit(reference_models=4, cache_dir=str(tmp_path), chunk_size=2, **SMALL)
    monkeypatch.setattr(stack, "train_mlp_stack", real_train)

    resumed = miaudit.audit(reference_models=4, cache_dir=str(tmp_path), chunk_size=2, **SMALL)
    assert resumed.timing["reference_models_trained"] == 2  # only the chunk in flight
    for name, s in scores(fresh).items():
        np.testing.assert_allclose(scores(resumed)[name], s, rtol=1e-6, atol=1e-9)
    assert [a.metrics.auc for a in resumed.attacks] == pytest.approx([a.metrics.auc for a in fresh.attacks])


def test_mlp_target_trains_in_the_reference_stack_and_is_cached(tmp_path):
    kw = dict(reference_models=4, cache_dir=str(tmp_path), precision="float32", **SMALL)
    first = miaudit.audit(**kw)
    assert first.timing["target_trained_with_references"] is True
    assert 0 < first.timing["train_target_s"] < first.timing["train_reference_s"]
    # the same model as training the target on its own, up to float rounding
    cfg = make_config(**{k: v for k, v in kw.items() if k != "progress"})
    plan = make_plan(cfg)
    alone = fit_single(model_spec("mlp", cfg.hidden), plan.member_x, plan.member_y, plan.n_classes,
                       cfg.recipe.model_copy(update={"seed": cfg.seed}), cfg.seed, "float32")
    np.testing.assert_allclose(first.model.logits(plan.pool_x), alone.logits(plan.pool_x), rtol=1e-4, atol=1e-4)
    second = miaudit.audit(**kw)
    assert second.timing["train_target_s"] == 0 and second.timing["reference_models_trained"] == 0
    np.testing.assert_array_equal(second.model.logits(plan.pool_x), first.model.logits(plan.pool_x))
    assert second.target.train_accuracy == first.target.train_accuracy

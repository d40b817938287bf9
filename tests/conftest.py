"""Shared fixtures: an isolated model cache, and a real overfit target with shadow models for attack tests."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier

from miaudit.signals.inputs import AttackInputs


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny torch models on a shared 2-core machine run faster and steadier on one intra-op thread."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("MIAUDIT_CACHE", str(tmp_path_factory.getbasetemp() / "model-cache"))


N_SIDE = 400  # members, non-members and fresh (never seen) records


def _log_proba(model, x: np.ndarray) -> np.ndarray:
    return np.log(np.clip(model.predict_proba(x), 1e-6, 1.0)).astype(np.float32)


@pytest.fixture(scope="session")
def digits_inputs():
    """Audited records = 400 target members + 400 non-members + 400 fresh records nobody trained on;
    4 shadow models, each a random half of 597 disjoint attacker records. Returns (inputs, kinds)."""
    x, y = load_digits(return_X_y=True)
    perm = np.random.default_rng(0).permutation(len(y))
    members, non_members, fresh, attacker = np.split(perm, [N_SIDE, 2 * N_SIDE, 3 * N_SIDE])
    audited = np.concatenate([members, non_members, fresh])
    kinds = np.repeat(["member", "non-member", "fresh"], N_SIDE)

    def forest(idx, seed):
        return RandomForestClassifier(n_estimators=50, random_state=seed).fit(x[idx], y[idx])

    target = forest(members, 0)
    shadow_in = np.zeros((4, len(attacker)), bool)
    shadows = []
    for k in range(4):
        shadow_in[k, np.random.default_rng(10 + k).permutation(len(attacker))[: len(attacker) // 2]] = True
        shadows.append(forest(attacker[shadow_in[k]], 10 + k))
    n, z = len(audited), np.zeros((4, 0, 1, 10), np.float32)
    inputs = AttackInputs(
        _log_proba(target, x[audited])[:, None], y[audited],
        np.stack([_log_proba(s, x[audited]) for s in shadows])[:, :, None], np.zeros((4, n), bool),
        np.stack([_log_proba(s, x[attacker]) for s in shadows])[:, :, None], shadow_in, y[attacker],
        z[0], z, np.zeros(0, np.int64))
    return inputs, kinds

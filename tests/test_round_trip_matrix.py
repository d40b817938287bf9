"""Every way into the same model on the same records gives the same per-record target outputs: the
target miaudit trains on digits; its --save-target file audited on the dataset, on a CSV of the same
records as scikit-learn publishes them (pixel counts 0..16, label, is_member), and served over HTTP
by ``miaudit serve``; and the audit's own signals read back with --predictions."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits

import miaudit
from miaudit.serve.app import create_app
from miaudit.serve.model_file import load_served_model
from miaudit.serve.server import BackgroundServer
from miaudit.serve.settings import ServeSettings
from miaudit.signals.functions import probabilities
from miaudit.targets.predictions import save_predictions

TOKEN = "round-trip-matrix-token-0001"
SETTINGS = {"members": 150, "epochs": 15, "hidden": "32", "seed": 4, "attacks": ["threshold-loss"],
            "progress": False, "n_jobs": 1}
SUFFIX = {"forest": "skops", "mlp": "onnx"}
WAYS = ["trained here", "saved file, dataset", "saved file, csv", "saved file, http", "predictions"]


@pytest.fixture(scope="module", params=sorted(SUFFIX))
def trained(request, tmp_path_factory, one_torch_thread):
    """(model name, the audit that trained it, its --save-target file, a folder for the other ways)."""
    folder = tmp_path_factory.mktemp(request.param)
    first = miaudit.audit(dataset="digits", target=request.param, reference_models=2,
                          cache_dir=str(folder / "cache"), population=100, **SETTINGS)
    return request.param, first, first.save_target(folder / f"target.{SUFFIX[request.param]}"), folder


def outputs(result) -> dict[int, np.ndarray]:
    """digits record index -> the target's probabilities on it."""
    proba = probabilities(result.inputs.target_logits[:, 0])
    return dict(zip(result.record_index.tolist(), proba))


def audit_csv(first, path, folder):
    """The audited records as a user's CSV: scikit-learn's digits (0..16), label, is_member."""
    x, y = load_digits(return_X_y=True)
    frame = pd.DataFrame(x[first.record_index], columns=[f"pixel_{i}" for i in range(64)])
    frame["label"], frame["is_member"] = y[first.record_index], first.membership.astype(int)
    frame.to_csv(folder / "digits.csv", index=False)
    again = miaudit.audit(dataset=str(folder / "digits.csv"), member_column="is_member", target=str(path),
                          reference_models=0, **{k: v for k, v in SETTINGS.items() if k != "members"})
    return {int(first.record_index[row]): p for row, p in outputs(again).items()}


def way_outputs(way, first, path, folder) -> dict[int, np.ndarray]:
    if way == "trained here":
        return outputs(first)
    if way == "saved file, dataset":
        return outputs(miaudit.audit(dataset="digits", target=str(path), reference_models=0, **SETTINGS))
    if way == "saved file, csv":
        return audit_csv(first, path, folder)
    if way == "saved file, http":
        (folder / "token").write_text(TOKEN)
        app = create_app(load_served_model(path), ServeSettings(), [TOKEN])
        with BackgroundServer(app) as server:
            return outputs(miaudit.audit(dataset="digits", target=server.url, token_file=str(folder / "token"),
                                         reference_models=0, **SETTINGS))
    signals = save_predictions(first.predictions(), folder / "signals.npz")
    again = miaudit.audit(predictions=str(signals), attacks=["threshold-loss"], progress=False)
    return outputs(again)


@pytest.mark.parametrize("way", WAYS)
def test_every_way_in_gives_the_same_per_record_outputs(trained, way):
    model, first, path, folder = trained
    expected, got = outputs(first), way_outputs(way, first, path, folder)
    assert set(got) == set(expected)
    gap = max(float(np.abs(got[i] - expected[i]).max()) for i in expected)
    print(f"{model} / {way}: max per-record probability difference {gap:.2e}")
    assert gap < 1e-5, (model, way, gap)


@pytest.mark.parametrize("name", ["breast-cancer", "digits"])
def test_a_users_model_of_a_bundled_dataset_is_fed_scikit_learns_copy_of_it(name):
    import sklearn.datasets
    from sklearn.linear_model import LogisticRegression

    from miaudit.data.builtin import SKLEARN_LOADERS

    x, y = getattr(sklearn.datasets, SKLEARN_LOADERS[name])(return_X_y=True)  # as published, not standardised
    model = LogisticRegression(max_iter=5000).fit(x, y)
    result = miaudit.audit(dataset=name, target=model, reference_models=0, **SETTINGS)
    records = result.record_index
    assert result.target.train_accuracy == model.score(x[records][result.membership], y[records][result.membership])
    assert result.target.test_accuracy == model.score(x[records][~result.membership], y[records][~result.membership])

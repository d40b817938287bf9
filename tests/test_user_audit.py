"""The user's own data and model through audit(): tables with text columns, the user's split, model
files exported by miaudit and audited again, precomputed predictions."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from tests.fixtures.census import census_frame, write_census_csv

import miaudit
from miaudit.errors import InputError
from miaudit.targets.predictions import save_predictions

SMALL = {"members": 200, "epochs": 20, "population": 300, "progress": False, "hidden": "32"}
ATTACKS = ["threshold-loss", "lira-online", "rmia", "shokri-lr"]


def scores(result) -> dict[str, np.ndarray]:
    return {a.name: a.scores for a in result.attacks}


def test_census_csv_with_text_columns_is_encoded_and_audited(tmp_path):
    path = write_census_csv(tmp_path / "adult.csv", n=900)
    result = miaudit.audit(dataset=str(path), label_column="income", target="forest", reference_models=4,
                           attacks=["threshold-loss", "lira-online"], progress=False)
    block = result.to_dict()["data"]
    assert block["report"]["label_mapping"] == {"<=50K": 0, ">50K": 1}  # stray spaces stripped
    assert set(block["report"]["categorical_columns"]) == {"workclass", "education", "marital-status", "occupation"}
    dropped = block["report"]["dropped_missing_feature"]
    frame = census_frame(900)
    assert dropped == int(((frame.workclass == " ?") | (frame.occupation == " ?")).sum()) > 0
    assert result.attack("lira-online").metrics.auc > 0.7  # a forest memorises its members


def test_member_column_is_the_audited_split(tmp_path):
    path = write_census_csv(tmp_path / "adult.csv", n=900, member_fraction=0.6)
    result = miaudit.audit(dataset=str(path), label_column="income", member_column="is_member", target="logreg",
                           reference_models=0, attacks=["threshold-loss"], progress=False)
    frame = pd.read_csv(path)
    kept = ~((frame.workclass.str.strip() == "?") | (frame.occupation.str.strip() == "?")).to_numpy()
    members_in_file = frame.is_member.to_numpy()[kept].astype(bool)
    # records are known by their row in the file: the member column at those rows is the membership
    np.testing.assert_array_equal(result.membership, frame.is_member.to_numpy()[result.record_index].astype(bool))
    assert kept[result.record_index].all()
    assert result.target.members == members_in_file.sum()
    assert result.target.non_members == (~members_in_file).sum()  # as many non-members as there are


def test_members_file_names_the_members_of_a_named_dataset(tmp_path):
    ids = np.random.default_rng(1).choice(1797, 300, replace=False)
    (tmp_path / "members.txt").write_text("\n".join(map(str, ids)))
    result = miaudit.audit(dataset="digits", members_file=str(tmp_path / "members.txt"), target="tree",
                           reference_models=0, attacks=["threshold-loss"], progress=False)
    assert set(result.record_index[result.membership]) == set(ids)
    assert not set(result.record_index[~result.membership]) & set(ids)


@pytest.mark.parametrize("model, suffix", [("mlp", "onnx"), ("forest", "skops")])
def test_exported_target_audited_from_file_gives_the_same_scores(tmp_path, model, suffix, one_torch_thread):
    first = miaudit.audit(dataset="digits", target=model, reference_models=4, attacks=ATTACKS, seed=3, **SMALL)
    path = first.save_target(tmp_path / f"target.{suffix}")
    again = miaudit.audit(dataset="digits", target=str(path), reference_architecture=model, reference_models=4,
                          attacks=ATTACKS, seed=3, **SMALL)
    np.testing.assert_array_equal(again.record_index, first.record_index)
    for name, expected in scores(first).items():
        np.testing.assert_allclose(scores(again)[name], expected, rtol=1e-4, atol=1e-4, err_msg=name)
    assert again.to_dict()["target_source"]["kind"] == ("ONNX" if model == "mlp" else "scikit-learn")


def test_predictions_file_gives_the_end_to_end_numbers(tmp_path, one_torch_thread):
    first = miaudit.audit(dataset="digits", target="mlp", reference_models=4, attacks=ATTACKS, **SMALL)
    path = save_predictions(first.predictions(), tmp_path / "signals.npz")
    again = miaudit.audit(predictions=str(path), attacks=ATTACKS, progress=False)
    for a, b in zip(first.attacks, again.attacks):
        assert a.name == b.name
        np.testing.assert_array_equal(a.scores, b.scores)
        assert a.metrics.auc == b.metrics.auc
        assert a.metrics.tpr_at_fpr == b.metrics.tpr_at_fpr
    assert again.target.train_accuracy == first.target.train_accuracy


def test_permuted_predictions_permute_the_scores(tmp_path, one_torch_thread):
    first = miaudit.audit(dataset="digits", target="tree", reference_models=4, attacks=ATTACKS, **SMALL)
    p = first.predictions()
    order = np.random.default_rng(0).permutation(len(p.labels))
    arrays = {"target_logits": p.target_logits[order], "labels": p.labels[order], "membership": p.membership[order],
              "reference_logits": p.reference_logits[:, order], "reference_masks": p.reference_in[:, order],
              "population_logits": p.population_logits, "population_labels": p.population_labels,
              "population_reference_logits": p.population_reference_logits, "record_ids": p.record_ids[order]}
    np.savez(tmp_path / "shuffled.npz", **arrays)
    again = miaudit.audit(predictions=str(tmp_path / "shuffled.npz"), attacks=ATTACKS, progress=False)
    for name, expected in scores(first).items():
        np.testing.assert_allclose(scores(again)[name], expected[order], rtol=1e-9, atol=1e-12, err_msg=name)


def test_onnx_target_needs_a_reference_architecture(tmp_path, one_torch_thread):
    first = miaudit.audit(dataset="digits", target="mlp", reference_models=0, attacks=["threshold-loss"], **SMALL)
    path = first.save_target(tmp_path / "t.onnx")
    with pytest.raises(InputError, match="--reference-architecture"):
        miaudit.audit(dataset="digits", target=str(path), reference_models=2, progress=False)


def test_model_file_is_fed_raw_records(tmp_path, one_torch_thread):
    first = miaudit.audit(dataset="digits", target="mlp", reference_models=0, attacks=["threshold-loss"], **SMALL)
    path = first.save_target(tmp_path / "t.onnx")
    raw = miaudit.audit(dataset="digits", target=str(path), reference_models=0, attacks=["threshold-loss"], **SMALL)
    scaled = miaudit.audit(dataset="digits", target=str(path), target_input="scaled", reference_models=0,
                           attacks=["threshold-loss"], **SMALL)
    assert raw.target.train_accuracy == first.target.train_accuracy > 0.8
    np.testing.assert_allclose(raw.inputs.target_logits, first.inputs.target_logits, atol=1e-4)
    assert np.abs(scaled.inputs.target_logits - first.inputs.target_logits).max() > 1.0  # scaled twice


def test_results_json_records_the_encoding_so_the_audit_can_be_repeated(tmp_path):
    path = write_census_csv(tmp_path / "adult.csv", n=600)
    result = miaudit.audit(dataset=str(path), label_column="income", categorical="ordinal", missing="impute",
                           target="tree", reference_models=0, attacks=["threshold-loss"], progress=False)
    result.save(tmp_path / "out")
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    from miaudit.data.encoding import TableEncoding

    encoding = TableEncoding.model_validate(saved["data"]["encoding"])
    assert encoding.categorical == "ordinal" and encoding.missing == "impute"
    assert encoding.width == 8  # one column per feature when ordinal
    assert saved["data"]["report"]["kept"] == 600  # imputed, nothing dropped


def census_arrays(n: int = 800):
    """(x float32 [n, 8] with ordinal-coded text columns, y [n], membership [n], the text column positions)."""
    frame = census_frame(n, seed=2)
    frame = frame[(frame.workclass != " ?") & (frame.occupation != " ?")]
    text = ["workclass", "education", "marital-status", "occupation"]
    features = frame.drop(columns="income")
    for column in text:
        features[column] = features[column].astype("category").cat.codes
    x = features.to_numpy(np.float32)
    y = (frame.income.str.strip() == ">50K").to_numpy().astype(np.int64)
    membership = np.random.default_rng(0).random(len(y)) < 0.5
    return x, y, membership, [features.columns.get_loc(c) for c in text]


def test_users_sklearn_pipeline_audited_with_clone_references():
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    x, y, membership, text = census_arrays()
    model = Pipeline([("encode", ColumnTransformer([("text", OneHotEncoder(handle_unknown="ignore"), text)],
                                                   remainder="passthrough")),
                      ("boost", GradientBoostingClassifier(n_estimators=60, max_depth=4, random_state=0))])
    model.fit(x[membership], y[membership])
    result = miaudit.audit(target=model, data=(x, y), membership=membership, reference_models=4,
                           attacks=["threshold-loss", "lira-online"], progress=False)
    assert result.to_dict()["target_source"]["reference_models"].startswith("clones")
    np.testing.assert_array_equal(result.membership, membership[result.record_index])
    expected = np.log(np.clip(model.predict_proba(x[result.record_index]), 1e-12, None))
    np.testing.assert_allclose(result.inputs.target_logits[:, 0], expected, rtol=1e-4, atol=1e-4)
    # the reference models are the user's pipeline refitted: same class, same hyperparameters, other rows
    refs = result.inputs.reference_logits[:, :, 0]
    assert refs.shape == (4, len(result.membership), 2)
    assert not np.allclose(refs[0], refs[1])


def test_train_fn_trains_each_reference_model_once(tmp_path):
    from sklearn.linear_model import LogisticRegression

    x, y, membership, _ = census_arrays(500)
    calls = []

    def train_fn(xs, ys, seed):
        calls.append((len(xs), seed))
        return LogisticRegression(max_iter=300, C=10.0).fit(xs, ys)

    model = train_fn(x[membership], y[membership], 0)
    calls.clear()
    kwargs = {"target": model, "data": (x, y), "membership": membership, "reference_models": 4,
              "attacks": ["lira-online"], "progress": False, "train_fn": train_fn}
    first = miaudit.audit(**kwargs)
    assert len(calls) == 4 and len({seed for _, seed in calls}) == 4
    assert all(abs(n - len(first.membership) / 2) <= 1 for n, _ in calls)  # each trains on half the audited
    again = miaudit.audit(**kwargs)  # every reference model from the cache
    assert len(calls) == 4
    np.testing.assert_array_equal(again.attack("lira-online").scores, first.attack("lira-online").scores)


def test_bad_membership_is_one_line():
    x, y, membership, _ = census_arrays(300)
    with pytest.raises(InputError, match="membership: expected"):
        miaudit.audit(target="tree", data=(x, y), membership=membership[:-1], progress=False)
    with pytest.raises(InputError, match="every record is a member"):
        miaudit.audit(target="tree", data=(x, y), membership=np.ones(len(y), bool), progress=False)


def test_record_scores_come_back_in_the_users_record_order():
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    x = rng.standard_normal((400, 5)).astype(np.float32)
    y = (x[:, 0] + 0.5 * rng.standard_normal(400) > 0).astype(int)
    membership = np.arange(400) < 150  # members first: the user's order carries membership
    model = RandomForestClassifier(n_estimators=30, random_state=0).fit(x[membership], y[membership])
    result = miaudit.audit(target=model, data=(x, y), membership=membership, reference_models=2,
                           attacks=["threshold-loss"], progress=False)
    scores = result.record_scores("threshold-loss", len(x))
    audited = ~np.isnan(scores)
    assert audited.sum() == 300 and audited[:150].all()  # every member, 150 of the 250 non-members
    auc = roc_auc_score(membership[audited], scores[audited])
    assert auc == pytest.approx(result.attack("threshold-loss").metrics.auc) and auc > 0.7
    with pytest.raises(ValueError, match="n_records"):
        result.record_scores("threshold-loss", 10)

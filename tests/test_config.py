"""Settings files and their precedence: file < flags; unknown keys and bad values are rejected."""
from __future__ import annotations

import pytest

from miaudit.audit.config import make_config
from miaudit.errors import InputError


def test_toml_file_with_recipe_and_flag_override(tmp_path):
    f = tmp_path / "audit.toml"
    f.write_text('dataset = "wine"\nmembers = 40\nattacks = "threshold-loss,rmia"\n[recipe]\nepochs = 7\nlr = 0.01\n')
    cfg = make_config(f, members=50, dropout=0.2)
    assert cfg.dataset == "wine" and cfg.members == 50
    assert cfg.attacks == ["threshold-loss", "rmia"]
    assert cfg.recipe.epochs == 7 and cfg.recipe.lr == 0.01 and cfg.recipe.dropout == 0.2


def test_yaml_and_json_files(tmp_path):
    (tmp_path / "a.yaml").write_text("target: tree\nhidden: 512,256\n")
    (tmp_path / "a.json").write_text('{"target": "svm", "queries": 2}')
    assert make_config(tmp_path / "a.yaml").hidden == (512, 256)
    assert make_config(tmp_path / "a.json").queries == 2


@pytest.mark.parametrize("text, message", [
    ('{"memberz": 3}', "unknown setting 'memberz'"),
    ('{"recipe": {"epochz": 3}}', "unknown setting 'epochz'"),
    ('{"reference_models": -1}', "reference_models"),
    ('{"members": 10', "not valid json"),
    ('[1, 2]', "mapping"),
])
def test_bad_files_name_the_problem(tmp_path, text, message):
    f = tmp_path / "bad.json"
    f.write_text(text)
    with pytest.raises(InputError, match=message):
        make_config(f)


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        make_config(tmp_path / "nope.toml")
    (tmp_path / "c.ini").write_text("x=1")
    with pytest.raises(InputError, match="json, .toml or .yaml"):
        make_config(tmp_path / "c.ini")


@pytest.mark.parametrize("settings, message", [
    (dict(hidden="-5"), "hidden: layer widths must be positive integers"),
    (dict(hidden="8,,8"), "hidden"),
    (dict(hidden=[8, True]), "hidden"),
    (dict(hidden=[8.5]), "hidden"),
    (dict(keep_classes="1,x"), "keep_classes"),
    (dict(seed=-1), "seed"),
    (dict(lr=float("inf")), "lr: Input should be a finite number"),
    (dict(momentum=float("nan")), "momentum"),
    (dict(confidence=float("inf")), "confidence"),
    (dict(reference_models=1025), "reference_models: at most 1024"),
    (dict(n_jobs=-2), "n_jobs"),
    (dict(attacks=[]), "attacks: give attack names"),
])
def test_settings_are_bounded_and_strictly_parsed(settings, message):
    with pytest.raises(InputError, match=message):
        make_config(**settings)


def test_widths_and_classes_parse_from_text():
    cfg = make_config(hidden="512-256", keep_classes="3, 1")
    assert cfg.hidden == (512, 256) and cfg.keep_classes == [3, 1]


def test_the_config_file_is_named_only_for_its_own_values(tmp_path):
    f = tmp_path / "a.json"
    f.write_text('{"members": 0, "recipe": {"epochs": 3}}')
    with pytest.raises(InputError, match="^--config a.json: members"):
        make_config(f)
    with pytest.raises(InputError, match="^lr"):
        make_config(f, members=10, lr=-1.0)


def test_reference_models_are_bounded_by_memory(monkeypatch):
    import miaudit.audit.limits as limits
    from miaudit.audit.plan import make_plan

    monkeypatch.setattr(limits, "available_memory", lambda: 1_000_000)
    with pytest.raises(InputError, match=r"^--reference-models: 64 .* at most (\d+) reference models fit") as err:
        make_plan(make_config(target="tree", reference_models=64, population=300))
    fits = int(err.value.args[0].split("at most ")[1].split()[0])
    assert 0 < fits < 64
    make_plan(make_config(target="tree", reference_models=fits, population=300))  # the stated number fits
    with pytest.raises(InputError, match="^--reference-models"):
        make_plan(make_config(target="tree", reference_models=fits + 1, population=300))


def test_diverged_models_are_named_with_the_likely_cause():
    import numpy as np

    from miaudit.audit.signal_stage import divergence_hint
    from miaudit.signals.matrix import check_outputs_finite

    hint = divergence_hint(make_config(lr=3.0, weight_decay=0.1))
    logits = np.zeros((3, 5, 1, 2), np.float32)
    check_outputs_finite(hint, "reference models'", logits, per_model=True)
    logits[1, 2, 0, 1] = np.nan
    with pytest.raises(InputError, match=r"^training diverged: 1 of 3 reference models' outputs are not finite "
                                         r"\(NaN\) — lower --lr \(now 3\) or --weight-decay \(now 0.1\)$"):
        check_outputs_finite(hint, "reference models'", logits, per_model=True)


def test_flat_training_keys_in_a_file_set_the_recipe(tmp_path):
    f = tmp_path / "a.json"
    f.write_text('{"epochs": 2, "lr": 0.01, "members": 40}')
    cfg = make_config(f)
    assert cfg.recipe.epochs == 2 and cfg.recipe.lr == 0.01 and cfg.members == 40
    assert make_config(f, epochs=5).recipe.epochs == 5  # a flag still wins
    f.write_text('{"epochs": "two"}')
    with pytest.raises(InputError, match="^--config a.json: epochs: .*valid integer.*'two'"):
        make_config(f)
    f.write_text('{"epochs": 2, "recipe": {"epochs": 3}}')
    with pytest.raises(InputError, match="epochs: given twice"):
        make_config(f)


@pytest.mark.parametrize("name, text", [("a.yaml", "seed: true\n"), ("a.json", '{"seed": true}'),
                                        ("b.json", '{"recipe": {"seed": false}}')])
def test_a_bool_is_not_a_seed(tmp_path, name, text):
    f = tmp_path / name
    f.write_text(text)
    with pytest.raises(InputError, match="seed: Input should be a valid integer"):
        make_config(f)

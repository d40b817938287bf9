"""Each attack's parameters, declared once (attacks/params.py): the registry's models agree with the
functions, the config and --attack-param validate them, and the run passes and records them."""
from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys

import numpy as np
import pytest
from tests.fixtures.cli import run_cli

from miaudit.attacks.params import describe
from miaudit.attacks.registry import ATTACKS
from miaudit.audit.config import make_config, parse_attack_params
from miaudit.errors import InputError
from miaudit.signals.inputs import AttackInputs

# where each function really lives (the registry points at an entry that imports it on first call for these)
TORCH_MODULES = {"qmia": "qmia", "label-only-boundary": "label_only_boundary",
                 "label-only-boundary-lira": "label_only_boundary", "gradient-norm": "gradient_norm",
                 "gradient-norm-lira": "gradient_norm"}


def real_function(spec):
    fn = spec.load()
    base = spec.name.removesuffix("-pinball")
    if base in TORCH_MODULES:
        return getattr(importlib.import_module(f"miaudit.attacks.{TORCH_MODULES[base]}"), fn.__name__)
    return fn


def small_inputs(k: int = 8, n: int = 60, z: int = 40, c: int = 3, seed: int = 0) -> AttackInputs:
    rng = np.random.default_rng(seed)
    labels, pop_y = rng.integers(0, c, n), rng.integers(0, c, z)
    ref_in = np.zeros((k, n), bool)
    ref_in[: k // 2, : n // 2] = ref_in[k // 2:, n // 2:] = True
    t = rng.normal(0, 1, (n, 1, c)).astype(np.float32)
    r = rng.normal(0, 1, (k, n, 1, c)).astype(np.float32)
    pt, pr = rng.normal(0, 1, (z, 1, c)).astype(np.float32), rng.normal(0, 1, (k, z, 1, c)).astype(np.float32)
    ids = np.arange(n)
    return AttackInputs(t, labels, r, ref_in, r, ref_in, labels, pt, pr, pop_y, ids, ids)


@pytest.mark.parametrize("name", list(ATTACKS))
def test_each_params_model_matches_its_function(name):
    """The model's fields are the function's keywords (but seed) and, with a variant's fixed settings,
    its defaults: running with the model's values is running the function as it was."""
    spec = ATTACKS[name]
    signature = inspect.signature(real_function(spec)).parameters
    keywords = {k: p.default for k, p in signature.items() if k not in ("inputs", "seed")}
    assert set(spec.params.model_fields) == set(keywords)
    fixed = {"qmia-pinball": {"regressor": "pinball-trees"}, "bavaria-n-online": {"predictive": "n"},
             "bavaria-n-offline": {"predictive": "n"}}.get(name, {})
    assert dict(spec.settings()) == {**keywords, **fixed}
    assert spec.seeded == ("seed" in signature)


def test_describe_gives_default_bounds_and_description():
    rows = {row[0]: row for row in describe(ATTACKS["rmia"].params)}
    assert rows["gamma"][1:3] == ("2.0", "> 0") and rows["gamma"][3]
    assert rows["offline_a"][2] == ">= 0, <= 1"
    assert describe(ATTACKS["bavaria-n-online"].params)[0][1:3] == ("'n'", "one of t | n")
    assert describe(ATTACKS["threshold-loss"].params) == []


def test_config_validates_attack_params_with_one_line_errors():
    assert make_config(attack_params={"rmia": {"gamma": "3"}}).attack_params == {"rmia": {"gamma": 3.0}}
    for bad, words in (({"rmia": {"gamma": -1}}, "attack_params: rmia.gamma: Input should be greater than 0"),
                       ({"rmia": {"gama": 1}}, "rmia has no parameter 'gama' (its parameters: gamma,"),
                       ({"nope": {}}, "attack_params: unknown attack 'nope'"),
                       ({"bavaria-online": {"predictive": "x"}}, "bavaria-online.predictive: Input should be")):
        with pytest.raises(InputError, match=re.escape(words)) as err:
            make_config(attack_params=bad)
        assert "\n" not in str(err.value)


def test_attack_param_flags_parse_and_override_the_file(tmp_path):
    assert parse_attack_params(None) is None
    assert parse_attack_params(["rmia.gamma=2.5", "lira-online.variance=global", "label-only-noise.levels=0.1,0.2",
                                "population.alpha=null"]) == {
        "rmia": {"gamma": 2.5}, "lira-online": {"variance": "global"},
        "label-only-noise": {"levels": "0.1,0.2"}, "population": {"alpha": None}}
    for bad in ("rmia", "rmia.gamma", "gamma=2", "rmia.gamma="):
        with pytest.raises(InputError, match="--attack-param: use NAME.PARAM=VALUE"):
            parse_attack_params([bad])
    file = tmp_path / "c.json"
    file.write_text('{"attack_params": {"rmia": {"gamma": 3, "offline_a": 0.5}, "base-online": {"temperature": 1}}}')
    cfg = make_config(file, attack_params=["rmia.gamma=4"])  # the CLI passes the flags' texts
    assert cfg.attack_params == {"rmia": {"gamma": 4.0, "offline_a": 0.5}, "base-online": {"temperature": 1.0}}
    noise = make_config(attack_params=["label-only-noise.levels=0.1,0.2"])
    assert noise.attack_params == {"label-only-noise": {"levels": (0.1, 0.2)}}


def test_streamed_attacks_take_the_given_params_their_streamed_form_has(tmp_path):
    """--attack-param with --signal-chunk: the streamed form gets the value (scores equal the in-memory
    attack's with it, the value recorded); a parameter the streamed form lacks is a one-line refusal."""
    from tests.test_streaming_attacks import synthetic_inputs

    from miaudit.attacks.streamed import run_streamed
    from miaudit.signals.store import store_inputs

    make_config(signal_chunk=100, attack_params={"rmia": {"gamma": 3}})  # accepted
    with pytest.raises(InputError, match="rmia's streamed form takes no n_population") as e:
        make_config(signal_chunk=100, attack_params={"rmia": {"n_population": 50}})
    assert "\n" not in str(e.value)
    inputs, _ = synthetic_inputs(k=8, n=300)
    store = store_inputs(inputs, tmp_path / "s", chunk=64)
    for name, values in (("rmia", {"gamma": 3.0}), ("base-offline", {"offline_scale": 0.5})):
        spec = ATTACKS[name].with_params(values)
        want, got = spec.run(inputs), run_streamed(name, store, 0, dict(spec.given))
        default = run_streamed(name, store)
        np.testing.assert_allclose(got.scores, want.scores, rtol=1e-9, atol=1e-12)
        assert not np.allclose(got.scores, default.scores)  # the value changed the attack
        assert got.params == want.params and all(got.params[k] == v for k, v in values.items())


def test_given_params_reach_the_attack_and_its_recorded_params():
    inputs = small_inputs()
    spec = ATTACKS["base-offline"]
    default = spec.run(inputs)
    assert spec.with_params(None) is spec and spec.with_params({}) is spec
    tuned = spec.with_params({"offline_scale": 0.5}).run(inputs)
    assert tuned.params["offline_scale"] == 0.5 and default.params["offline_scale"] == 0.33
    assert not np.allclose(tuned.scores, default.scores)
    rmia = ATTACKS["rmia"].with_params({"gamma": 3})
    assert rmia.run(inputs).params["gamma"] == 3.0  # rmia reports no gamma itself: the given value lands there
    assert "gamma" not in ATTACKS["rmia"].run(inputs).params  # defaults: params as before
    assert np.array_equal(ATTACKS["bavaria-n-online"].run(inputs).scores,
                          ATTACKS["bavaria-online"].with_params({"predictive": "n"}).run(inputs).scores)
    with pytest.raises(InputError, match="attack_params: rmia.offline_a: Input should be less than or equal to 1"):
        ATTACKS["rmia"].with_params({"offline_a": 2})


def test_the_attacks_command_lists_parameters(monkeypatch, capsys):
    code, out, _ = run_cli(["attacks"], monkeypatch, capsys)
    assert code in (0, None)
    assert "threat model" in out and "lira-online" in out  # the attack table stays
    assert "--attack-param NAME.PARAM=VALUE" in out and "offline_scale" in out and "0.33" in out


def test_a_bad_attack_param_flag_exits_2(monkeypatch, capsys, tmp_path):
    for flag, words in (("rmia.gamma=-1", "rmia.gamma: Input should be greater than 0"),
                        ("rmia-gamma", "--attack-param: use NAME.PARAM=VALUE")):
        code, _, err = run_cli(["audit", "--attack-param", flag, "--out", str(tmp_path / "o")], monkeypatch, capsys)
        assert code == 2 and words in err and "Traceback" not in err


def test_an_audit_records_its_attack_params_in_results(tmp_path):
    import miaudit

    result = miaudit.audit(target="naive-bayes", members=60, reference_models=2, population=50, seed=1,
                           attacks=["base-offline", "base-online"], progress=False, cache=False,
                           attack_params={"base-offline": {"offline_scale": 0.5}})
    doc = result.to_dict()
    assert doc["config"]["attack_params"] == {"base-offline": {"offline_scale": 0.5}}
    params = {a["name"]: a["params"] for a in doc["attacks"]}
    assert params["base-offline"]["offline_scale"] == 0.5 and params["base-online"] == {"temperature": 2.0}


def test_the_registry_holds_functions_and_imports_no_torch():
    """Attacks by direct reference; the torch ones (qmia, label-only-boundary, gradient-norm) import on first call."""
    assert all(callable(spec.function) for spec in ATTACKS.values())
    code = ("import sys; import miaudit.attacks.registry as r; assert 'torch' not in sys.modules; "
            "r.ATTACKS['rmia'].function; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"

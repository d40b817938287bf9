"""Settings files and their precedence: file < flags; unknown keys and bad values are rejected."""
from __future__ import annotations

import pytest

from miaudit.config import make_config
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

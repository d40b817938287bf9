"""`miaudit audit` is checked against AuditConfig: each option is a config field (or a listed
CLI-only one), each field an option (or a listed config-file-only one), and their defaults agree."""
from __future__ import annotations

import inspect
import re

import pytest
import typer

from miaudit import cli
from miaudit.audit.config import AuditConfig, make_config
from miaudit.models.recipe import TrainingRecipe

CONFIG_FILE_ONLY = {"chunk_size", "n_jobs", "confidence", "momentum", "recipe"}
"""Settings a config file or the library sets, with no option of their own."""


def _options() -> dict[str, typer.models.OptionInfo]:
    return {name: p.default for name, p in inspect.signature(cli.audit).parameters.items()}


def test_every_option_is_a_config_field_or_says_why_not():
    fields = set(AuditConfig.model_fields) | set(TrainingRecipe.model_fields)
    options = set(_options())
    stray = options - fields - set(cli.AUDIT_ONLY_OPTIONS) - set(cli.NEGATED_FLAGS)
    assert not stray, f"options that set no config field: {sorted(stray)}"
    settings = set(cli.config_settings(dict.fromkeys(options)))
    missing = fields - settings - CONFIG_FILE_ONLY
    assert not missing, f"config fields with no option: {sorted(missing)}"


def test_options_leave_the_config_default():
    """An option the user did not give is None (or an unset flag): the config's default decides."""
    for name, info in _options().items():
        if name in cli.AUDIT_ONLY_OPTIONS or name == "config":
            continue
        assert info.default in (None, False), f"--{name.replace('_', '-')} restates a default: {info.default!r}"
    assert make_config(**cli.config_settings({n: i.default for n, i in _options().items()})) == AuditConfig()


def test_defaults_named_in_help_match_the_config():
    defaults = {**TrainingRecipe().model_dump(), **AuditConfig().model_dump()}
    checked = 0
    for name, info in _options().items():
        said = re.search(r"\(default:? (-?[0-9][0-9_.,e-]*)\)", info.help or "")
        if said is None or name not in defaults or not isinstance(defaults[name], (int, float)):
            continue
        assert float(said.group(1).replace(",", "").replace("_", "")) == pytest.approx(defaults[name]), name
        checked += 1
    assert checked >= 3


@pytest.mark.parametrize("flag, field, value", [("no_cache", "cache", False), ("trust_pickle", "trust_pickle", True),
                                                ("coin_flip_members", "coin_flip_members", True)])
def test_flags_set_their_field(flag, field, value):
    options = {n: i.default for n, i in _options().items()}
    options[flag] = True
    assert getattr(make_config(**cli.config_settings(options)), field) is value

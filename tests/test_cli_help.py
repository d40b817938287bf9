"""`miaudit audit --help`: every default stated, extras shown with their brackets, flags as flags."""
from __future__ import annotations

import re

from typer.testing import CliRunner

from miaudit.cli import app


def _help() -> str:
    result = CliRunner().invoke(app, ["audit", "--help"], env={"COLUMNS": "400", "NO_COLOR": "1"}, color=False)
    assert result.exit_code == 0
    return re.sub(r"\s+", " ", result.output.replace("│", " "))


def test_help_shows_extras_with_brackets_and_flags_without_a_value():
    text = _help()
    assert "pip install miaudit[ray]" in text and "pip install miaudit[zarr]" in text
    for flag in ("--no-header", "--trust-pickle", "--no-cache", "--quiet", "--coin-flip-members"):
        assert re.search(rf"{flag} <", text) is None, flag


def test_help_states_the_defaults():
    text = _help()
    assert "a quarter of the dataset's records, at most 2500" in text
    assert re.search(r"--target <str> .*model file .*URL", text)
    for phrase in ("auto (default", "(default 8)", "(default 0)", "(default 30)", "(default 64)",
                   "(default 0.001)", "(default digits)", "mlp (default)"):
        assert phrase in text, phrase

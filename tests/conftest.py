"""Shared fixtures: an isolated model cache per test session, no progress bars."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("MIAUDIT_CACHE", str(tmp_path_factory.getbasetemp() / "model-cache"))

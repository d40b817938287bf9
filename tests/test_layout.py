"""The package layout (issue 23): one folder per stage, the public import paths users rely on kept."""
import subprocess
import sys
from pathlib import Path

import miaudit

PACKAGE = Path(miaudit.__file__).resolve().parent


def test_the_top_level_shows_the_stages():
    modules = sorted(p.stem for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    stages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert len(modules) <= 6, modules
    assert {"audit", "signals", "metrics", "report", "attacks", "models", "data"} <= stages


def test_public_names_keep_their_import_paths():
    from miaudit.extras import require as top_require
    from miaudit.metrics import AttackMetrics, compute_metrics
    from miaudit.metrics.attack_metrics import AttackMetrics as Metrics
    from miaudit.metrics.attack_metrics import compute_metrics as compute
    from miaudit.signals import loss
    from miaudit.signals.functions import loss as signal_loss
    from miaudit.targets import require

    assert (AttackMetrics, compute_metrics, loss, require) == (Metrics, compute, signal_loss, top_require)
    from miaudit.audit.config import AuditConfig

    assert miaudit.AuditConfig is AuditConfig


def test_miaudit_audit_is_the_package_and_runs_the_audit(monkeypatch):
    import miaudit.audit.run as run

    calls = []
    monkeypatch.setattr(run, "audit", lambda *args, **kwargs: calls.append((args, kwargs)) or "result")
    from miaudit import audit

    assert audit is miaudit.audit and audit.__name__ == "miaudit.audit"
    assert miaudit.audit(dataset="digits", progress=False) == "result"
    assert calls == [((), {"dataset": "digits", "progress": False})]


def test_importing_the_config_loads_no_torch():
    code = "import sys, miaudit; miaudit.AuditConfig; import miaudit.audit; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

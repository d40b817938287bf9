"""The audit stage, the conductor: config.py (AuditConfig), plan.py (AuditPlan), limits.py (what one machine
can hold), estimate.py (the run-time estimate), target_source.py (where the target comes from), run.py
(audit(): plan, train, signals, attacks, choice, result), signal_stage.py (the signal matrix in memory or
in a chunked store), attack_stage.py (the one attacks stage), predictions.py (an audit of precomputed predictions).

``miaudit.audit`` names this package and the function at once: the package is callable, so
``miaudit.audit(dataset="digits", ...)`` and ``from miaudit import audit; audit(...)`` run
:func:`miaudit.audit.run.audit` (imported on the call: importing the config loads no torch).
"""
from __future__ import annotations

import sys
from types import ModuleType
from typing import Any


class _CallablePackage(ModuleType):
    """This package, callable as :func:`miaudit.audit.run.audit` (same arguments, same AuditResult)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from miaudit.audit.run import audit

        return audit(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage

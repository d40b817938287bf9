"""miaudit: membership-inference privacy auditing for machine-learning classifiers."""
from miaudit import audit  # the audit package, callable as the audit() function (miaudit/audit/__init__.py)
from miaudit.errors import InputError
from miaudit.version import __version__

__all__ = ["audit", "AuditConfig", "InputError", "__version__"]


def __getattr__(name: str):
    """``miaudit.AuditConfig``, imported on first use (it loads scikit-learn and pydantic)."""
    if name == "AuditConfig":
        from miaudit.audit.config import AuditConfig

        return AuditConfig
    raise AttributeError(f"module 'miaudit' has no attribute {name!r}")

"""miaudit: membership-inference privacy auditing for machine-learning classifiers."""
from miaudit.version import __version__

__all__ = ["audit", "AuditConfig", "InputError", "__version__"]


def __getattr__(name: str):
    """Import the heavy parts (torch) only when used: ``miaudit.audit(...)``, ``miaudit.AuditConfig``.

    ``miaudit.audit`` is the audit package, callable as the audit() function (see miaudit/audit/__init__.py).
    """
    if name == "audit":
        import miaudit.audit as package

        return package
    if name == "AuditConfig":
        from miaudit.audit.config import AuditConfig

        return AuditConfig
    if name == "InputError":
        from miaudit.errors import InputError

        return InputError
    raise AttributeError(f"module 'miaudit' has no attribute {name!r}")

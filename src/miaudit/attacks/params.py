"""Attack parameters: the base of every attack's parameter model and how they are read and checked.

Each attack function declares its tunable numbers once, as a small pydantic model next to it (field
type, bounds, default, one-line description); ``AttackSpec.params`` points to it and a variant's
fixed settings are that model with other defaults (:func:`with_defaults`). The audit's seed is not a
parameter (``AttackSpec.seeded``).
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from miaudit.errors import InputError


class AttackParams(BaseModel):
    """Base of the parameter models: unknown names refused, values fixed once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class NoParams(AttackParams):
    """An attack with nothing to tune."""


def with_defaults(model: type[AttackParams], name: str, **defaults: Any) -> type[AttackParams]:
    """``model`` with other defaults (a variant's fixed settings), same types, bounds and descriptions."""
    fields = {}
    for field, value in defaults.items():
        if field not in model.model_fields:
            raise ValueError(f"{model.__name__} has no parameter {field!r}")
        info = model.model_fields[field]
        fields[field] = (info.annotation, info.merge_field_infos(info, default=value))
    return create_model(name, __base__=model, **fields)


def check_params(attack: str, model: type[AttackParams], values: dict[str, Any]) -> AttackParams:
    """The validated parameters of ``attack``; a bad one is an InputError naming attack, parameter and bound."""
    try:
        return model(**values)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            known = ", ".join(model.model_fields) or "none"
            raise InputError(f"attack_params: {attack} has no parameter {where!r} (its parameters: {known})") from None
        value = err.get("input")
        raise InputError(f"attack_params: {attack}.{where}: {err['msg']} (got {value!r})") from None


def bounds(info) -> str:
    """The bounds of one field as text ("> 0, <= 1", one of a | b), or "" when it has none."""
    parts = []
    for item in info.metadata:
        for attr, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            if getattr(item, attr, None) is not None:
                parts.append(f"{sign} {getattr(item, attr)}")
        if getattr(item, "min_length", None) is not None:
            parts.append(f"at least {item.min_length} value" + "s" * (item.min_length != 1))
    choices = getattr(info.annotation, "__args__", ())
    if getattr(info.annotation, "__origin__", None) is not None and choices and all(
            isinstance(c, str) for c in choices):
        parts.append("one of " + " | ".join(choices))
    return ", ".join(parts)


def describe(model: type[AttackParams]) -> list[tuple[str, str, str, str]]:
    """(name, default, bounds, description) of each parameter, for ``miaudit attacks``."""
    return [(name, repr(info.default), bounds(info), info.description or "")
            for name, info in model.model_fields.items()]

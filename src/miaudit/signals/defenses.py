"""Output defenses: what a deployed model releases per query, applied to a target's (and the
attacker's reference models') outputs before any attack sees them.

A defense maps logits [..., C] to the logits of the released output, so that its softmax is the
probability vector the attacker can reconstruct from what was released:

- ``top-k:K``: the K largest probabilities, unchanged and in their order; the attacker spreads
  the remaining mass evenly over the other classes (a function of the released values only).
- ``round:D``: every probability rounded to D decimals, the predicted label released with it (a
  tie after rounding is broken in favour of the model's own top class).
- ``temperature:T``: softmax(logits / T): T > 1 flattens, T < 1 sharpens; the argmax is kept.
- ``label``: the predicted label only, seen as one-hot log-probabilities with a floor of 1e-12 on
  the other classes: loss-based attacks then see ~0 for a correct prediction and ~27.6 nats for a
  wrong one (the gap attack), and every calibrated attack works on that two-valued signal.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import log_softmax

from miaudit.errors import InputError

KINDS = ("top-k", "round", "temperature", "label")
PROBABILITY_FLOOR = 1e-12
_TIE_BREAK = 1e-6  # added to the top class's log-probability after rounding, far below any rounding step
MAX_DECIMALS = 12


@dataclass(frozen=True)
class OutputDefense:
    """One output defense: kind (one of KINDS) and its parameter (k, decimals or temperature)."""

    kind: str
    value: float = 0.0

    def __str__(self) -> str:
        if self.kind == "label":
            return "label"
        shown = f"{self.value:g}" if self.kind == "temperature" else str(int(self.value))
        return f"{self.kind}:{shown}"

    def apply(self, logits: np.ndarray) -> np.ndarray:
        """float32 [..., C] logits of the released output, for logits [..., C] of any leading shape."""
        z = np.asarray(logits, np.float64)
        if z.size == 0:
            return z.astype(np.float32)
        logp = log_softmax(z, axis=-1)
        if self.kind == "temperature":
            out = log_softmax(z / self.value, axis=-1)
        elif self.kind == "label":
            out = _one_hot_log(z.argmax(-1), z.shape[-1])
        elif self.kind == "top-k":
            out = _top_k(logp, int(self.value))
        else:
            out = _rounded(logp, int(self.value))
        return out.astype(np.float32)


def _one_hot_log(label: np.ndarray, n_classes: int) -> np.ndarray:
    out = np.full((*label.shape, n_classes), np.log(PROBABILITY_FLOOR))
    np.put_along_axis(out, label[..., None], 0.0, axis=-1)
    return out


def _top_k(logp: np.ndarray, k: int) -> np.ndarray:
    c = logp.shape[-1]
    if k >= c:
        return logp
    p = np.exp(logp)
    top = np.argsort(-logp, axis=-1, kind="stable")[..., :k]
    kept = np.take_along_axis(p, top, axis=-1)
    rest = np.clip(1.0 - kept.sum(-1, keepdims=True), 0.0, None) / (c - k)
    out = np.broadcast_to(rest, p.shape).copy()
    np.put_along_axis(out, top, kept, axis=-1)
    return np.log(np.clip(out, PROBABILITY_FLOOR, None))


def _rounded(logp: np.ndarray, decimals: int) -> np.ndarray:
    p = np.round(np.exp(logp), decimals)
    out = np.log(np.clip(p, PROBABILITY_FLOOR, None))
    label = logp.argmax(-1)[..., None]
    top = np.take_along_axis(out, label, axis=-1)
    np.put_along_axis(out, label, top + _TIE_BREAK, axis=-1)
    return out


def parse_output_defense(text: str | OutputDefense | None) -> OutputDefense | None:
    """An OutputDefense from "top-k:3", "round:2", "temperature:2", "label" (or "none" / None: None).

    Raises InputError("output_defense: ...") on anything else.
    """
    if text is None or isinstance(text, OutputDefense):
        return text
    spec = str(text).strip().lower()
    if spec in ("", "none"):
        return None
    kind, _, arg = spec.partition(":")
    kind, arg = kind.strip(), arg.strip()
    usage = "use top-k:K, round:D, temperature:T or label"
    if kind not in KINDS:
        raise InputError(f"output_defense: unknown defense {text!r}; {usage}")
    if kind == "label":
        if arg:
            raise InputError(f"output_defense: 'label' takes no parameter, got {text!r}")
        return OutputDefense("label")
    if not arg:
        raise InputError(f"output_defense: {kind} needs a parameter, e.g. {kind}:{2 if kind != 'top-k' else 3}")
    if kind == "temperature":
        try:
            t = float(arg)
        except ValueError:
            raise InputError(f"output_defense: temperature must be a number, got {arg!r}") from None
        if not (np.isfinite(t) and t > 0):
            raise InputError(f"output_defense: temperature must be a positive finite number, got {arg}")
        return OutputDefense("temperature", t)
    if not arg.isdigit():
        raise InputError(f"output_defense: {kind} needs a whole number, got {arg!r}")
    n = int(arg)
    if kind == "top-k" and n < 1:
        raise InputError(f"output_defense: top-k needs k >= 1, got {n}")
    if kind == "round" and n > MAX_DECIMALS:
        raise InputError(f"output_defense: round keeps at most {MAX_DECIMALS} decimals, got {n}")
    return OutputDefense(kind, float(n))


class LabelRelease:
    """A target that releases labels only (a label-only prediction API) behind the Target protocol:
    logits(x) float32 [n, C] are the labels as one-hot log-probabilities (floor 1e-12), as the
    "label" output defense gives them, so every attack sees exactly what the API releases."""

    def __init__(self, target) -> None:
        self.target = target
        self.name, self.n_classes = target.name, target.n_classes

    def logits(self, x: np.ndarray) -> np.ndarray:
        return _one_hot_log(np.asarray(self.target.predict(x), np.int64), self.n_classes).astype(np.float32)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.exp(self.logits(x).astype(np.float64))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.target.predict(x), np.int64)

    def __getattr__(self, name: str):  # query counters and budget of the wrapped target
        if name == "target":
            raise AttributeError(name)
        return getattr(self.target, name)


class DefendedTarget:
    """A Target whose logits are the defended release of ``target``'s (Target protocol)."""

    def __init__(self, target, defense: OutputDefense) -> None:
        self.target, self.defense = target, defense
        self.name, self.n_classes = target.name, target.n_classes

    def logits(self, x: np.ndarray) -> np.ndarray:
        return self.defense.apply(self.target.logits(x))

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.exp(log_softmax(self.logits(x).astype(np.float64), axis=-1))


class DefendedReferences:
    """Reference models queried through the same defense: logits(x) float32 [K, m, C]."""

    def __init__(self, refs, defense: OutputDefense) -> None:
        self.refs, self.defense = refs, defense

    @property
    def n_models(self) -> int:
        return self.refs.n_models

    def logits(self, x: np.ndarray) -> np.ndarray:
        return self.defense.apply(self.refs.logits(x))

    def __getattr__(self, name: str):  # trained, train_seconds, ... of the wrapped models
        if name == "refs":
            raise AttributeError(name)
        return getattr(self.refs, name)

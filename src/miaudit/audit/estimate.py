"""A rough estimate of an audit's attack time, printed before a run that will take minutes.

The model (docs/defaults.md): label-only attacks query a model for every audited record, so an
attack takes ``cost x N x Q x s`` seconds, where ``s`` is the seconds per record and unit of
``AttackSpec.cost`` for the target's kind (measured on a CPU core: 2.3e-3 for a scikit-learn
ensemble, 4e-4 for other models), times ``1 + K`` for the -lira variants, which search every
reference model too (label-only-boundary-lira at most 16). Score-based attacks read the signal
matrix: ``cost x (N / 5000) x (K / 64)`` seconds (``cost`` is their time on the 64-model,
5,000-record Fashion-MNIST audit). Attacks run on the usable cores, longest first, so the wall time
is at least the longest one and at least the total over the cores. Reference-model training and
signals are not included.
"""
from __future__ import annotations

from dataclasses import dataclass

from miaudit.attacks.registry import AttackSpec

ENSEMBLES = ("forest", "gradient-boosting", "extra-trees", "hist-gb")  # slow predict: many trees per query
SECONDS_PER_UNIT = {"ensemble": 2.3e-3, "other": 4e-4}  # per record and unit of cost, label-only
BENCH_RECORDS, BENCH_MODELS = 5000, 64  # the audit AttackSpec.cost was measured on
BOUNDARY_MODELS = 16  # label-only-boundary-lira searches at most this many reference models
MINUTES_WORTH_NOTING = 60.0  # seconds: a shorter run gets no estimate


@dataclass(frozen=True)
class RunEstimate:
    """Estimated seconds per attack and the wall time of all of them on ``cores`` cores."""

    seconds: dict[str, float]
    wall_s: float
    label_only_s: float


def estimate_attacks(specs: list[AttackSpec], n_records: int, n_references: int, queries: int = 1,
                     target: str = "mlp", cores: int = 1) -> RunEstimate:
    """Estimate the attack time of an audit of ``n_records`` audited records with ``n_references``
    reference models (module docstring); ``target`` is the target's model name or source."""
    kind = "ensemble" if any(name in target for name in ENSEMBLES) else "other"
    seconds: dict[str, float] = {}
    for spec in specs:
        if spec.needs_model:
            models = 1
            if spec.needs_references:
                models += min(n_references, BOUNDARY_MODELS) if "boundary" in spec.name else n_references
            seconds[spec.name] = spec.cost * n_records * queries * SECONDS_PER_UNIT[kind] * models
        else:
            seconds[spec.name] = spec.cost * n_records / BENCH_RECORDS * max(n_references, 1) / BENCH_MODELS
    total = sum(seconds.values())
    wall = max(max(seconds.values(), default=0.0), total / max(cores, 1))
    label_only = sum(s for name, s in seconds.items() if name.startswith("label-only"))
    return RunEstimate(seconds, wall, label_only)


def runtime_notice(specs: list[AttackSpec], n_records: int, n_references: int, queries: int, target: str,
                   cores: int, named: list[str]) -> str | None:
    """One line with the estimate and how to make the run faster, or None for a run of under a minute.
    ``named``: the --attacks names as given ("all", "auto" or attack names)."""
    est = estimate_attacks(specs, n_records, n_references, queries, target, cores)
    if est.wall_s < MINUTES_WORTH_NOTING:
        return None
    slowest = sorted(est.seconds, key=est.seconds.get, reverse=True)[:3]
    shown = ", ".join(f"{name} {_duration(est.seconds[name])}" for name in slowest)
    hints = []
    if est.label_only_s > est.wall_s / 2:
        hints.append("leave out the label-only attacks (--attacks auto, the default)" if "auto" not in named
                     else "leave out the label-only attacks you named")
    hints.append("fewer --members or --reference-models")
    where = f"{cores} core" + "s" * (cores > 1)
    return (f"estimated attack time about {_duration(est.wall_s)} on {where} for {n_records} audited records "
            f"and {n_references} reference models, before training (slowest: {shown}); faster: "
            + "; ".join(hints))


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"

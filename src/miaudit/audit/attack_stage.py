"""The attacks stage of every audit flow: which attacks a signal source can serve, each attack run on it
and timed, its metrics computed against the truth, one AttackOutcome each; then the headline attack."""
from __future__ import annotations

import os
import time
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from miaudit.attacks.choice import choose_attack
from miaudit.attacks.registry import ATTACKS, AttackSpec
from miaudit.attacks.streamed import run_streamed
from miaudit.audit.config import AuditConfig
from miaudit.metrics.attack_metrics import compute_metrics
from miaudit.progress import ProgressBoard
from miaudit.report.results import AttackOutcome
from miaudit.signals.source import SignalSource


@dataclass(frozen=True)
class AttackSettings:
    """What the attacks stage reads of the config: the attacks' seed, query views per record, worker
    threads (< 1: one per core), the metrics' δ, confidence level, coin-flip membership and ε method, and the
    attacks' parameter values by attack name (AuditConfig.attack_params)."""

    seed: int
    queries: int
    n_jobs: int
    delta: float
    confidence: float
    coin_flips: bool
    epsilon_method: str
    attack_params: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def of(cls, cfg: AuditConfig) -> AttackSettings:
        return cls(cfg.seed, cfg.queries, cfg.n_jobs, cfg.delta, cfg.confidence, cfg.coin_flip_members,
                   cfg.epsilon_method, dict(cfg.attack_params))

    def configured(self, specs: list[AttackSpec]) -> list[AttackSpec]:
        """The specs with the parameter values the config gives them (--attack-param)."""
        return [spec.with_params(self.attack_params.get(spec.name)) for spec in specs]

    @property
    def workers(self) -> int:
        return usable_cores() if self.n_jobs < 1 else self.n_jobs


def runnable(source: SignalSource, specs: list[AttackSpec]) -> tuple[list[AttackSpec], list[str]]:
    """(the specs the source can serve, in order; why each other one cannot: "name: needs ...")."""
    unmet = {spec.name: source.unmet_need(spec) for spec in specs}
    return [s for s in specs if not unmet[s.name]], [why for why in unmet.values() if why]


def attack_outcomes(source: SignalSource, specs: list[AttackSpec], settings: AttackSettings,
                    membership: np.ndarray, board: ProgressBoard | None = None) -> list[AttackOutcome]:
    """Run ``specs`` (runnable on ``source``) and score them against ``membership`` bool [N].

    In memory the attacks run concurrently in ``settings.workers`` threads, each with single-threaded
    BLAS, the longest (by ``AttackSpec.cost``) started first; on a chunked store one after the other,
    each streaming over the record chunks. Outcomes come back in the order of ``specs``; an attack's
    ``seconds`` is its own wall time.
    """
    board = board or ProgressBoard(False)
    specs = settings.configured(specs)
    q = settings.queries
    n, z = q * len(source.labels), q * source.offer.n_population

    def one(spec: AttackSpec) -> AttackOutcome:
        started = time.perf_counter()
        verdict = (run_streamed(spec.name, source.store, settings.seed, dict(spec.given)) if source.inputs is None
                   else spec.run(source.inputs, seed=settings.seed))
        seconds = time.perf_counter() - started
        metrics = compute_metrics(verdict.scores, membership, verdict.decision, source.labels,
                                  delta=settings.delta, confidence=settings.confidence,
                                  coin_flips=settings.coin_flips, epsilon_method=settings.epsilon_method)
        queries = verdict.queries if verdict.queries is not None else spec.target_queries(n, z)
        return AttackOutcome(spec.name, spec.threat_model, verdict.scores, metrics, seconds, verdict.params,
                             queries)

    if source.inputs is None:  # streamed: each attack reads the store chunk by chunk
        outcomes = []
        with board.task("attacks (streamed)", len(specs)) as update:
            for i, spec in enumerate(specs, start=1):
                outcomes.append(one(spec))
                update(i)
        return outcomes
    workers = max(1, min(len(specs), settings.workers))
    with (board.task("attacks", len(specs)) as update, threadpool_limits(1 if workers > 1 else None),
          ThreadPoolExecutor(workers) as pool):
        # longest first (LPT): a long attack started last would leave one core idle at the end
        futures: dict[int, Future] = {}
        for i in sorted(range(len(specs)), key=lambda i: -specs[i].cost):
            futures[i] = pool.submit(one, specs[i])
        for done, _ in enumerate(as_completed(futures.values()), start=1):
            update(done)
        return [futures[i].result() for i in range(len(specs))]


def choose_headline(settings: AttackSettings, outcomes: list[AttackOutcome], source: SignalSource,
                    timing: dict[str, Any], candidates: list[str] | None = None):
    """The headline attack of the outcomes, chosen without the membership labels
    (:func:`miaudit.attacks.choice.choose_attack` on the source's in-memory signals; on a chunked store:
    by rule) among ``candidates`` (the ladder's, with --attacks auto; None: every outcome); seconds into
    timing["choice_s"]."""
    if not outcomes or any(o.name not in ATTACKS for o in outcomes):
        return None
    t = time.perf_counter()
    names = [o.name for o in outcomes if not candidates or o.name in candidates] or [o.name for o in outcomes]
    specs = settings.configured([ATTACKS[n] for n in names])
    choice = choose_attack(specs, source.inputs, settings.seed, workers=settings.workers)
    timing["choice_s"] = time.perf_counter() - t
    return choice


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity where the OS reports one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1

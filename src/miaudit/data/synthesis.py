"""Model-guided synthesis of shadow training records (Shokri et al. 2017, Algorithm 1).

An attacker with no data climbs the target's confidence: from a random record, change k features
(binary ones flipped, continuous ones redrawn uniformly in their range); keep the proposal when the
target's probability of class c does not fall; after rej_max rejections in a row halve k (down to
k_min), and past k_min start again from a fresh random record. A record whose probability of c
exceeds conf_min while c is the top class is accepted with probability equal to that confidence.
Many records climb at once: each step is one batched query of every record still climbing.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from miaudit.data.shadow_data import FeatureDomain, feature_domain
from miaudit.errors import InputError
from miaudit.progress import ProgressBoard

PredictProba = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class SynthesisSettings:
    """k_max / k_min: features changed per proposal at first / at least (k_max None: d / 8, at most
    64); conf_min: confidence a record must pass; rej_max: rejections in a row before k halves;
    max_iterations: queries of one attempt before it starts afresh; query_budget: total target
    queries (None: 1000 per record)."""

    k_max: int | None = None
    k_min: int = 1
    conf_min: float = 0.5
    rej_max: int = 10
    max_iterations: int = 1000
    query_budget: int | None = None

    def check(self, n_features: int) -> None:
        k_max = self.resolved_k_max(n_features)
        if not 1 <= self.k_min <= k_max <= n_features:
            raise InputError(f"synthesis: need 1 <= k_min ({self.k_min}) <= k_max ({k_max}) <= features ({n_features})")
        if not 0 <= self.conf_min < 1:
            raise InputError(f"synthesis: conf_min must be in [0, 1), got {self.conf_min}")
        if self.rej_max < 1 or self.max_iterations < 1:
            raise InputError("synthesis: rej_max and max_iterations must be at least 1")
        if self.query_budget is not None and self.query_budget < 1:
            raise InputError(f"synthesis_queries: the query budget must be at least 1, got {self.query_budget}")

    def resolved_k_max(self, n_features: int) -> int:
        return self.k_max if self.k_max is not None else max(1, min(64, n_features // 8))


@dataclass
class SynthesisResult:
    """x float32 [n, d] (rows of failed slots are zeros), y int64 [n] the class each slot was
    synthesized for, ok bool [n], confidence float [n] the target's probability of y when accepted,
    queries int64 [n] target queries spent on each slot (all its attempts), attempts int64 [n]."""

    x: np.ndarray
    y: np.ndarray
    ok: np.ndarray
    confidence: np.ndarray
    queries: np.ndarray
    attempts: np.ndarray
    settings: dict = field(default_factory=dict)

    @property
    def total_queries(self) -> int:
        return int(self.queries.sum())

    @property
    def mean_queries_per_record(self) -> float:
        """Target queries per synthesized record: all queries (failed slots' too) / records made."""
        return self.total_queries / max(1, int(self.ok.sum()))

    def summary(self) -> dict:
        """The results.json ``shadow_data`` block's synthesis figures."""
        made = int(self.ok.sum())
        return {"requested": int(len(self.ok)), "synthesized": made, "target_queries": self.total_queries,
                "mean_queries_per_record": self.mean_queries_per_record,
                "mean_queries_per_accepted_slot": float(self.queries[self.ok].mean()) if made else None,
                "mean_confidence": float(self.confidence[self.ok].mean()) if made else None,
                "settings": self.settings}


def synthesize_records(predict_proba: PredictProba, domain: FeatureDomain, classes: np.ndarray,
                       settings: SynthesisSettings | None = None, seed: int = 0,
                       progress: Callable[[int], None] | None = None) -> SynthesisResult:
    """One record per entry of ``classes`` (int [n]) that the target puts in that class.

    predict_proba: records float32 [m, d] -> probabilities [m, C] (one query per record).
    Stops when every slot has a record or the next step would exceed the query budget.
    progress(records made so far) is called after every step.
    """
    s = settings or SynthesisSettings()
    d = domain.n_features
    s.check(d)
    classes = np.asarray(classes, np.int64)
    n = len(classes)
    budget = s.query_budget if s.query_budget is not None else 1000 * n
    k_max = s.resolved_k_max(d)
    rng = np.random.default_rng([seed, 29])
    best_x = domain.random_records(n, rng)
    current = best_x.copy()
    best = np.zeros(n)
    k = np.full(n, k_max)
    rejections = np.zeros(n, np.int64)
    steps = np.zeros(n, np.int64)  # queries of the current attempt
    out = np.zeros((n, d), np.float32)
    ok = np.zeros(n, bool)
    confidence = np.zeros(n)
    queries = np.zeros(n, np.int64)
    attempts = np.ones(n, np.int64)
    total = 0
    while True:
        a = np.flatnonzero(~ok)
        if len(a) == 0 or total + len(a) > budget:
            break
        probs = np.asarray(predict_proba(current[a]), np.float64)
        if probs.ndim != 2 or len(probs) != len(a) or probs.shape[1] <= classes.max():
            raise InputError(f"synthesis: the target answered shape {probs.shape} for {len(a)} records")
        total += len(a)
        queries[a] += 1
        steps[a] += 1
        c = classes[a]
        p = probs[np.arange(len(a)), c]
        rises = p >= best[a]
        accept = rises & (p > s.conf_min) & (probs.argmax(1) == c) & (rng.random(len(a)) < p)
        done = a[accept]
        out[done], ok[done], confidence[done] = current[done], True, p[accept]
        kept = rises & ~accept
        best_x[a[kept]], best[a[kept]], rejections[a[kept]] = current[a[kept]], p[kept], 0
        rejected = a[~rises]
        rejections[rejected] += 1
        stuck = rejected[rejections[rejected] > s.rej_max]
        halve = stuck[k[stuck] > s.k_min]
        k[halve], rejections[halve] = np.maximum(s.k_min, -(-k[halve] // 2)), 0
        restart = np.union1d(stuck[k[stuck] <= s.k_min], a[~accept & (steps[a] >= s.max_iterations)])
        if len(restart):
            best_x[restart] = domain.random_records(len(restart), rng)
            best[restart], k[restart], rejections[restart], steps[restart] = 0.0, k_max, 0, 0
            attempts[restart] += 1
            current[restart] = best_x[restart]
        move = np.setdiff1d(a[~accept], restart, assume_unique=True)
        current[move] = _change_features(best_x[move], k[move], domain, rng)
        if progress is not None:
            progress(int(ok.sum()))
    return SynthesisResult(out, classes, ok, confidence, queries, attempts,
                           {**asdict(s), "k_max": k_max, "query_budget": budget})


def _change_features(x: np.ndarray, k: np.ndarray, domain: FeatureDomain, rng: np.random.Generator) -> np.ndarray:
    """x [m, d] with k[i] distinct random features of row i changed: binary ones flipped, continuous
    ones redrawn uniformly in [low, high]."""
    m, d = x.shape
    if m == 0:
        return x
    width = int(k.max())
    keys = rng.random((m, d), dtype=np.float32)
    # the `width` smallest random keys of a row are a uniformly random set of distinct features
    cols = np.argpartition(keys, width - 1, axis=1)[:, :width] if width < d else np.argsort(keys, axis=1)
    use = np.arange(width) < k[:, None]
    rows = np.broadcast_to(np.arange(m)[:, None], cols.shape)[use]
    cols = cols[use]
    out = x.copy()
    old = out[rows, cols]
    flipped = np.where(old == domain.low[cols], domain.high[cols], domain.low[cols])
    out[rows, cols] = np.where(domain.binary[cols], flipped, domain.random_values(cols, rng))
    return out


def synthesize_shadow_data(plan, target, board=None) -> None:
    """Replace an attacker-mode plan's shadow records by records synthesized from ``target``.

    Every shadow slot gets a record of a class drawn evenly over the C classes; slots that found no
    record within the query budget are dropped from every shadow model's set. The attacker knows
    the feature schema (each feature's range and whether it is binary), taken from its own data's
    ranges; it uses no record. Writes notes and ``plan.shadow_data``.
    """

    cfg = plan.config
    n = len(plan.reference_x)
    if n == 0:
        return
    shape = plan.reference_x.shape[1:]
    domain = feature_domain(plan.reference_x)
    classes = np.random.default_rng([cfg.seed, 23]).permutation(np.arange(n) % plan.n_classes)
    settings = SynthesisSettings(query_budget=cfg.synthesis_queries)
    with (board or ProgressBoard(False)).task(f"synthesizing {n} shadow records", n) as update:
        result = synthesize_records(target.predict_proba, domain, classes, settings, cfg.seed, progress=update)
    made = int(result.ok.sum())
    if made == 0 or not plan.reference_masks[:, result.ok].any(axis=1).all():
        raise InputError(f"--shadow-data synthesized: only {made} of {n} records synthesized within "
                         f"{result.settings['query_budget']} target queries; raise --synthesis-queries")
    plan.reference_x = result.x[result.ok].reshape(made, *shape)
    plan.reference_y = result.y[result.ok]
    plan.reference_masks = plan.reference_masks[:, result.ok]
    summary = result.summary()
    plan.shadow_data.update({"kind": "synthesized", **summary})
    plan.notes.append(f"shadow models train on {made} of {n} records synthesized from the target "
                      f"({summary['mean_queries_per_record']:.0f} target queries per record)")

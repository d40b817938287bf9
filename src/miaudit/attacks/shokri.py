"""The Shokri et al. (2017) shadow-model attack.

An attack classifier learns "member or not" from the reference (shadow) models' prediction vectors
on records whose membership is known, then is applied to the audited model's prediction vectors.
Features (:func:`attack_features`) are the softmax probabilities in class order followed by the
one-hot true label, [M, 2C]. Per-class attack models (Shokri's design, the default) see only the
C probabilities of records of their class; the global model sees all 2C columns.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from pydantic import Field
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils.validation import check_is_fitted

from miaudit.attacks.inputs import AttackScores
from miaudit.attacks.params import AttackParams
from miaudit.attacks.sampling import identity_keys, order_by_identity
from miaudit.errors import InputError
from miaudit.signals import functions as signals
from miaudit.signals.inputs import AttackInputs

# Fewer members or non-members than this for a class -> that class uses the global model.
# (3-fold Platt calibration of the SVMs and the MLP's 10% early-stopping split need a few of each.)
MIN_ROWS_PER_SIDE = 10
# Upper bound on the balanced attack training set: K reference models x R records reach 10^5-10^6 rows,
# and past a couple of thousand rows per class the attack classifiers gain little but cost minutes.
MAX_TRAINING_ROWS = 10_000
# The RBF SVM costs ~rows^2..3: each RBF attack model trains on at most this many rows (stratified).
RBF_MAX_ROWS = 5000

_CLASSIFIERS: dict[str, Callable[[int], BaseEstimator]] = {
    "lr": lambda seed: make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
    # Depth and leaf-size limits keep the tree from memorising the shadow records.
    "dt": lambda seed: DecisionTreeClassifier(max_depth=8, min_samples_leaf=5, random_state=seed),
    # SVM margins -> P(member) by Platt scaling on 3 folds.
    "linear-svm": lambda seed: make_pipeline(StandardScaler(), CalibratedClassifierCV(
        LinearSVC(dual=False, random_state=seed), method="sigmoid", cv=3)),
    "rbf-svm": lambda seed: make_pipeline(StandardScaler(), CalibratedClassifierCV(
        SVC(kernel="rbf", random_state=seed), method="sigmoid", cv=3)),
    "rf": lambda seed: RandomForestClassifier(n_estimators=50, min_samples_leaf=5, random_state=seed),
    # One hidden layer of 64 units, as in Shokri et al.'s attack network; the (500, 500, 500) MLP of
    # some tutorials is far too slow for tens of thousands of rows on a few CPU cores.
    "mlp": lambda seed: make_pipeline(StandardScaler(), MLPClassifier(
        hidden_layer_sizes=(64,), early_stopping=True, max_iter=300, random_state=seed)),
}
CLASSIFIERS = tuple(_CLASSIFIERS)


class ShokriParams(AttackParams):
    """Parameters of every shokri-* attack."""

    per_class: bool = Field(True, description="one attack model per true class (else one for all records)")


def attack_features(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """float64 [..., 2C]: softmax probabilities in class order, then the one-hot true label.

    logits: [..., C]; labels: int broadcastable to logits.shape[:-1], values in [0, C).
    """
    probs = signals.probabilities(logits)
    n_classes = probs.shape[-1]
    labels = np.broadcast_to(np.asarray(labels), probs.shape[:-1])
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise InputError(f"labels: values must lie in [0, {n_classes})")
    one_hot = (labels[..., None] == np.arange(n_classes)).astype(np.float64)
    return np.concatenate([probs, one_hot], axis=-1)


class ShokriAttackModel(ClassifierMixin, BaseEstimator):
    """Membership classifier over :func:`attack_features` rows: fit(X [M, 2C], is_member [M]).

    classifier: one of CLASSIFIERS ("lr", "dt", "linear-svm", "rbf-svm", "rf", "mlp").
    per_class:  one model per true class, trained on that class's rows (probabilities only); a class
                with fewer than MIN_ROWS_PER_SIDE members or non-members (or none at all) falls
                back to the global model (probabilities + one-hot label).
    n_classes:  C; None infers it from X's width (2C).
    random_state: seed of every random choice (model init, RBF subsample).
    predict_proba -> [M, 2] (P(non-member), P(member)); predict -> bool [M] (P(member) >= 0.5).
    """

    def __init__(self, classifier: str = "lr", per_class: bool = True, n_classes: int | None = None,
                 random_state: int = 0):
        self.classifier = classifier
        self.per_class = per_class
        self.n_classes = n_classes
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray) -> ShokriAttackModel:
        """X: float [M, 2C] attack features; y: bool [M] is_member."""
        if self.classifier not in _CLASSIFIERS:
            raise InputError(f"classifier: unknown {self.classifier!r} (known: {', '.join(CLASSIFIERS)})")
        X, labels, n_classes = self._split_features(X)
        is_member = np.asarray(y).astype(bool)
        if is_member.shape != (len(X),):
            raise InputError(f"is_member: shape {is_member.shape}, expected ({len(X)},)")
        self.n_classes_ = n_classes
        self.classes_ = np.array([False, True])
        self.class_models_: dict[int, BaseEstimator] = {}
        if self.per_class:
            for c in range(n_classes):
                rows = labels == c
                if _enough_of_each(is_member[rows]):
                    self.class_models_[c] = self._fit_one(X[rows, :n_classes], is_member[rows], c + 1)
        self.global_model_ = None
        if len(self.class_models_) < n_classes:
            if not _enough_of_each(is_member):
                raise InputError(f"is_member: the attack model needs at least {MIN_ROWS_PER_SIDE} "
                                 f"members and {MIN_ROWS_PER_SIDE} non-members")
            self.global_model_ = self._fit_one(X, is_member, 0)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """float64 [M, 2]: columns P(non-member), P(member)."""
        check_is_fitted(self, "classes_")
        X, labels, n_classes = self._split_features(X)
        if n_classes != self.n_classes_:
            raise InputError(f"X: features for {n_classes} classes, the model was fitted on {self.n_classes_}")
        p_member = np.zeros(len(X))
        by_global = np.ones(len(X), dtype=bool)
        for c, model in self.class_models_.items():
            rows = labels == c
            if rows.any():
                p_member[rows] = model.predict_proba(X[rows, :n_classes])[:, 1]
                by_global[rows] = False
        if by_global.any():
            p_member[by_global] = self.global_model_.predict_proba(X[by_global])[:, 1]
        return np.column_stack([1.0 - p_member, p_member])

    def predict(self, X: np.ndarray) -> np.ndarray:
        """bool [M]: member where P(member) >= 0.5."""
        return self.predict_proba(X)[:, 1] >= 0.5

    def _fit_one(self, X: np.ndarray, is_member: np.ndarray, offset: int) -> BaseEstimator:
        seed = self.random_state + offset
        if self.classifier == "rbf-svm" and len(X) > RBF_MAX_ROWS:
            X, _, is_member, _ = train_test_split(X, is_member, train_size=RBF_MAX_ROWS,
                                                  stratify=is_member, random_state=seed)
        return _CLASSIFIERS[self.classifier](seed).fit(X, is_member)

    def _split_features(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """(X float64 [M, 2C], labels int [M], C) from attack features, validated."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] % 2 or X.shape[1] == 0:
            raise InputError(f"X: expected attack features [M, 2C], got shape {X.shape}")
        n_classes = X.shape[1] // 2
        if self.n_classes is not None and n_classes != self.n_classes:
            raise InputError(f"X: {X.shape[1]} columns, expected 2 * n_classes = {2 * self.n_classes}")
        if not np.isfinite(X).all():
            raise InputError("X: contains NaN or inf")
        one_hot = X[:, n_classes:]
        if not (np.isin(one_hot, (0.0, 1.0)).all() and (one_hot.sum(axis=1) == 1).all()):
            raise InputError("X: the last C columns must be a one-hot true label")
        return X, one_hot.argmax(axis=1), n_classes


def shokri_lr(inputs: AttackInputs, per_class: bool = True, seed: int = 0) -> AttackScores:
    """Shokri attack with logistic-regression attack models; score = P(member)."""
    return _shokri_attack(inputs, "lr", per_class, seed)


def shokri_dt(inputs: AttackInputs, per_class: bool = True, seed: int = 0) -> AttackScores:
    """Shokri attack with depth-limited decision-tree attack models; score = P(member)."""
    return _shokri_attack(inputs, "dt", per_class, seed)


def shokri_linear_svm(inputs: AttackInputs, per_class: bool = True, seed: int = 0) -> AttackScores:
    """Shokri attack with Platt-calibrated linear-SVM attack models; score = P(member)."""
    return _shokri_attack(inputs, "linear-svm", per_class, seed)


def shokri_rbf_svm(inputs: AttackInputs, per_class: bool = True, seed: int = 0) -> AttackScores:
    """Shokri attack with Platt-calibrated RBF-SVM attack models (<= 5,000 rows each)."""
    return _shokri_attack(inputs, "rbf-svm", per_class, seed)


def shokri_rf(inputs: AttackInputs, per_class: bool = True, seed: int = 0) -> AttackScores:
    """Shokri attack with random-forest attack models (50 trees each); score = P(member)."""
    return _shokri_attack(inputs, "rf", per_class, seed)


def shokri_mlp(inputs: AttackInputs, per_class: bool = True, seed: int = 0) -> AttackScores:
    """Shokri attack with one-hidden-layer (64) MLP attack models; score = P(member)."""
    return _shokri_attack(inputs, "mlp", per_class, seed)


def _shokri_attack(inputs: AttackInputs, classifier: str, per_class: bool, seed: int) -> AttackScores:
    """Train on the shadow models' query-0 outputs (K*R rows, balanced in/out), score the target's."""
    name = f"shokri-{classifier}"
    k, r = inputs.shadow_logits.shape[:2]
    if k == 0 or r == 0:
        raise InputError(f"{name}: needs at least 1 reference (shadow) model")
    ids = np.arange(r) if inputs.shadow_ids is None else inputs.shadow_ids
    rows = balanced_rows(inputs.shadow_in, ids, seed, name, MAX_TRAINING_ROWS)
    model_of, record_of = np.divmod(rows, r)
    logits = inputs.shadow_logits[model_of, record_of, 0]
    labels = inputs.shadow_labels[record_of]
    model = ShokriAttackModel(classifier, per_class, inputs.n_classes, seed)
    model.fit(attack_features(logits, labels), inputs.shadow_in[model_of, record_of])
    scores = model.predict_proba(attack_features(inputs.target_logits[:, 0], inputs.labels))[:, 1]
    return AttackScores(scores, scores >= 0.5, 0.5)


def balanced_rows(shadow_in: np.ndarray, ids: np.ndarray, seed: int, name: str, max_rows: int) -> np.ndarray:
    """int [2m] flat row indices k * R + r into shadow_in bool [K, R]: m members and m non-members,
    m = min(smaller side, max_rows / 2). Rows are drawn, and ordered, by a seeded key of (record id,
    model) (``ids`` int [R]), never by position: permuting the records draws the same rows in the same
    order, so the attack models fitted on them are the same."""
    k, r = shadow_in.shape
    is_member = shadow_in.reshape(k * r)
    members, non_members = np.flatnonzero(is_member), np.flatnonzero(~is_member)
    m = min(len(members), len(non_members), max_rows // 2)
    if m == 0:
        raise InputError(f"{name}: the reference models' known records are all members or all non-members")
    keys = identity_keys(ids, k, seed).reshape(k * r)
    row_ids, row_models = np.tile(ids, k), np.repeat(np.arange(k), r)

    def by_identity(rows: np.ndarray) -> np.ndarray:
        return rows[order_by_identity(keys[rows], row_ids[rows], row_models[rows])]

    return by_identity(np.concatenate([by_identity(members)[:m], by_identity(non_members)[:m]]))


def _enough_of_each(is_member: np.ndarray) -> bool:
    n_in = int(is_member.sum())
    return min(n_in, len(is_member) - n_in) >= MIN_ROWS_PER_SIDE

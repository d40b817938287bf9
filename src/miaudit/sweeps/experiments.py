"""The classic membership-inference experiments as sweeps (Shokri et al. 2017 and the studies after it).

Each returns the fields of a SweepSpec for a dataset; sizes are the classic study's (Fashion-MNIST,
MLP target, Shokri shadow models on attacker data) and can be changed with ``--set`` or ``--config``.
On a dataset with fewer records, ``members`` (and train-size's points) shrink to a quarter of its
records, the audit's own default rule. The classic attack is shokri-lr; the modern ones (lira, rmia,
threshold-loss) run beside it.
"""
from __future__ import annotations

from typing import Any

from miaudit.data.registry import list_datasets
from miaudit.errors import InputError

CLASSIC = ["shokri-lr", "threshold-loss", "lira-offline", "rmia"]
POOL_ATTACKS = ["threshold-loss", "lira-online", "rmia", "shokri-lr"]


def dataset_records(dataset: str) -> int | None:
    """Records of a named dataset as published (None for a file path or an unknown name). Reads no data."""

    name = str(dataset).strip().lower().replace("_", "-")
    return next((d.records for d in list_datasets() if d.name == name), None)


def _members(dataset: str, classic: int, share: float = 1.0) -> int:
    """The classic study's member count, or a quarter of the records when that is fewer (of the
    ``share`` of them a point keeps, e.g. 2 of 10 classes)."""
    n = dataset_records(dataset)
    return classic if n is None else max(1, min(classic, int(n * share) // 4))


def _base(dataset: str, members: int = 2500, share: float = 1.0, **extra: Any) -> dict[str, Any]:
    return {"dataset": dataset, "target": "mlp", "hidden": [256], "members": _members(dataset, members, share),
            "reference_models": 8, "reference_data": "attacker", "attacks": CLASSIC, "population": 2000, **extra}


def _points(key: str, values: list[Any], fmt=str) -> list[dict[str, Any]]:
    return [{"label": fmt(v), "settings": {key: v}} for v in values]


def shadow_count(dataset: str) -> dict[str, Any]:
    return dict(description="Attack success against the number of shadow models (Shokri, attacker data).",
                base=_base(dataset), points=_points("reference_models", list(range(2, 10)), lambda k: f"{k} shadows"),
                metric="accuracy", claim="flat", finding_attack="shokri-lr", x_label="shadow models",
                claim_text="attack accuracy shows no steady trend with the number of shadow models")


def train_size(dataset: str) -> dict[str, Any]:
    most = _members(dataset, 6000)
    sizes = [3000, 6000] if most == 6000 else [max(1, most // 2), most]
    return dict(description="Attack success against the target's training-set size.",
                base=_base(dataset), points=_points("members", sizes, lambda n: f"{n} records"),
                metric="accuracy", claim="decreasing", finding_attack="shokri-lr", x_label="training records",
                claim_text="more training records lower the attack's success")


def num_classes(dataset: str) -> dict[str, Any]:
    pts = [{"label": "10 classes", "settings": {"keep_classes": list(range(10))}},
           {"label": "5 classes", "settings": {"keep_classes": list(range(5))}},
           {"label": "2 classes", "settings": {"keep_classes": [0, 1]}}]
    return dict(description="Attack success against the number of classes (the first C classes kept).",
                base=_base(dataset, members=1000, share=0.2), points=pts, metric="accuracy", claim="decreasing",
                finding_attack="shokri-lr", x_label="classes",
                claim_text="fewer classes lower the attack's success")


def overfitting(dataset: str) -> dict[str, Any]:
    pts = [{"label": "dense 512-512", "settings": {"hidden": [512, 512]}},
           {"label": "dense 512-512 + dropout 0.5", "settings": {"hidden": [512, 512], "dropout": 0.5}}]
    return dict(description="A larger dense network, with and without dropout 0.5.",
                base=_base(dataset), points=pts, metric="accuracy", claim="decreasing", finding_attack="shokri-lr",
                x_label="network", claim_text="dropout lowers the attack's success on the larger network")


def attack_model(dataset: str) -> dict[str, Any]:
    attacks = ["shokri-lr", "shokri-dt", "shokri-linear-svm", "shokri-rbf-svm"]
    return dict(description="The Shokri attack model (lr / dt / linear SVM / RBF SVM) by shadow count.",
                base=_base(dataset, attacks=attacks),
                points=_points("reference_models", [2, 4, 6, 8], lambda k: f"{k} shadows"),
                metric="accuracy", claim="best-attack:shokri-linear-svm@6 shadows", x_label="shadow models",
                claim_text="the linear SVM is the best attack model at 6 shadow models")


def model_type(dataset: str) -> dict[str, Any]:
    targets = ["tree", "naive-bayes", "logreg", "forest", "mlp", "cnn"]
    return dict(description="Which target model type leaks most (pool reference models, modern attacks).",
                base=_base(dataset, reference_data="pool", attacks=POOL_ATTACKS, members=1000),
                points=_points("target", targets), metric="auc", claim="highest:tree", finding_attack="lira-online",
                x_label="target model", claim_text="decision trees leak most")


def epochs(dataset: str) -> dict[str, Any]:
    return dict(description="Attack success against training epochs.",
                base=_base(dataset, reference_data="pool", attacks=POOL_ATTACKS),
                points=_points("epochs", [1, 10, 100], lambda e: f"{e} epochs"), metric="auc",
                claim="increasing", finding_attack="lira-online", x_label="epochs",
                claim_text="longer training makes the target leak more")


DEFENSE_POINTS = [
    ("none", {}),
    ("dropout 0.5", {"dropout": 0.5}),
    ("weight decay 1e-3", {"weight_decay": 1e-3}),
    ("weight decay 1e-2", {"weight_decay": 1e-2}),
    ("label smoothing 0.1", {"label_smoothing": 0.1}),
    ("early stopping (patience 3)", {"patience": 3}),
    ("top-k:1", {"output_defense": "top-k:1"}),
    ("round:1", {"output_defense": "round:1"}),
    ("temperature:4", {"output_defense": "temperature:4"}),
    ("label only", {"output_defense": "label"}),
    ("DP-SGD ε=8", {"dp_epsilon": 8.0, "lr": 3e-3}),
    ("DP-SGD ε=4", {"dp_epsilon": 4.0, "lr": 3e-3}),
    ("DP-SGD ε=1", {"dp_epsilon": 1.0, "lr": 3e-3}),
]


def defenses(dataset: str) -> dict[str, Any]:
    return dict(description="Every defense at a few strengths: test accuracy against attack AUC and TPR@0.1% FPR.",
                base=_base(dataset, reference_data="pool", attacks=POOL_ATTACKS, members=1000,
                           coin_flip_members=True),
                points=[{"label": label, "settings": s} for label, s in DEFENSE_POINTS], metric="auc",
                claim="lowest:DP-SGD ε=1", finding_attack="lira-online", x_label="defense",
                claim_text="DP-SGD at ε=1 gives the lowest attack AUC")


EXPERIMENTS = {"shadow-count": shadow_count, "train-size": train_size, "num-classes": num_classes,
               "overfitting": overfitting, "attack-model": attack_model, "model-type": model_type,
               "epochs": epochs, "defenses": defenses}


def builtin(name: str, dataset: str = "fashion-mnist") -> dict[str, Any]:
    """The SweepSpec fields of built-in experiment ``name`` on ``dataset``."""
    if name not in EXPERIMENTS:
        raise InputError(f"experiment: unknown experiment {name!r}; choose one of {', '.join(EXPERIMENTS)} "
                         "(or give your own with --config sweep.toml)")
    return {"experiment": name, **EXPERIMENTS[name](dataset)}

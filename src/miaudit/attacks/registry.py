"""Attack names -> the functions behind them and what each needs."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from miaudit.attacks import (
    base,
    bavaria,
    label_only_augmentation,
    label_only_gap,
    label_only_noise,
    lira,
    population,
    rmia,
    rmia_offline,
    shokri,
    streamed,
    threshold,
    torch_attacks,
)
from miaudit.attacks.inputs import AttackScores
from miaudit.attacks.params import AttackParams, NoParams, check_params, with_defaults
from miaudit.errors import InputError
from miaudit.signals.inputs import AttackInputs
from miaudit.signals.offer import SourceOffer

CANNOT_STREAM = "cannot stream over signal chunks (--signal-chunk)"
"""Words of the runnability answer for an attack that has no streamed form."""


@dataclass(frozen=True)
class AttackSpec:
    """One attack. ``function``: the attack (inputs -> AttackScores); for the modules that import torch an
    entry of :mod:`miaudit.attacks.torch_attacks` that imports it on first call.

    needs_references: at least one reference / shadow model; needs_in_models: reference models
    trained on the audited records (online attacks, reference_data="pool"); needs_population:
    attacker records that no model trained on; seeded: the function takes the audit's ``seed``;
    uses_population: reads population signals when there are some (the local-offset variants);
    cost: rough relative run time (seconds on the 64-model Fashion-MNIST audit), only used to start
    the longest attacks first when they run concurrently. variant_of: for miaudit's improvements of a
    published attack, the canonical name of that attack (None for the published attacks themselves).
    needs_model: queries the audited model itself on the audited records (label-only attacks), so
    needs ``AttackInputs.records`` and ``target_model``; needs_white_box: reads the audited model's
    parameters (a torch target); neither is there for an audit of precomputed predictions.
    needs_records: reads the audited and population records' features (``records``,
    ``population_records``), not only the models' outputs on them. params: the function's parameter
    model (:mod:`miaudit.attacks.params`; a variant's fixed settings are its defaults); given: the
    values the audit's config set (``attack_params``), recorded in the verdict's ``params``.
    """

    name: str
    function: Callable[..., AttackScores]
    threat_model: str
    description: str
    needs_references: bool = False
    needs_in_models: bool = False
    needs_population: bool = False
    seeded: bool = False
    params: type[AttackParams] = NoParams
    cost: float = 0.2
    variant_of: str | None = None
    uses_population: bool = False
    needs_model: bool = False
    needs_white_box: bool = False
    needs_records: bool = False
    given: tuple[tuple[str, Any], ...] = ()

    def target_queries(self, audited: int, population: int) -> int:
        """Target queries behind this attack's signals: the audited records' (N x Q), plus the
        population's (Z x Q) for attacks that read them; label-only attacks count their own."""
        return audited + (population if self.needs_population or self.uses_population else 0)

    def load(self) -> Callable[..., AttackScores]:
        """The attack's function."""
        return self.function

    def settings(self, values: dict[str, Any] | None = None) -> AttackParams:
        """The validated parameters: the spec's defaults, ``given`` and ``values`` over them
        (a bad value: InputError naming attack, parameter and bound)."""
        return check_params(self.name, self.params, {**dict(self.given), **(values or {})})

    def with_params(self, values: dict[str, Any] | None) -> AttackSpec:
        """This attack with the config's ``values`` for its parameters (None or empty: itself)."""
        if not values:
            return self
        return replace(self, given=tuple(self.settings(values).model_dump(include=set(values)).items()))

    def run(self, inputs: AttackInputs, seed: int = 0) -> AttackScores:
        """The attack's verdict with its parameters (``given`` over the defaults); the given values are
        added to the verdict's ``params`` (the attack's own entries win)."""
        kwargs = dict(self.settings())
        if self.seeded:
            kwargs["seed"] = seed
        verdict = self.function(inputs, **kwargs)
        return replace(verdict, params={**dict(self.given), **verdict.params}) if self.given else verdict

    def unmet_need_in(self, offer: SourceOffer) -> str | None:
        """Why this attack cannot run on what ``offer`` holds, or None when it can: the one runnability
        check (the plan, the run, the headline choice, the ladder and a predictions file all ask it)."""
        if offer.streamed and self.name not in streamed.STREAMED:
            why = getattr(streamed, "NOT_STREAMED", {}).get(self.name, "it has no chunked form")
            return f"{self.name}: {CANNOT_STREAM}: {why}"
        if self.needs_model and not offer.has_model:
            return f"{self.name}: needs the audited model itself to query (not only its predictions)"
        if self.needs_white_box and not offer.white_box:
            return f"{self.name}: needs a torch target whose parameters it can read (white-box)"
        if self.needs_records and not offer.has_records:
            return f"{self.name}: needs the audited and population records themselves (not only predictions)"
        if self.needs_references and offer.n_references < 1:
            return f"{self.name}: needs at least 1 reference (shadow) model (--reference-models)"
        if self.needs_in_models and not offer.has_in_models:
            return f"{self.name}: needs reference models trained on the audited records (--reference-data pool)"
        if self.needs_population and offer.n_population < 1:
            return f"{self.name}: needs population records (attacker data no model trained on)"
        if self.needs_references and (self.needs_model or self.needs_white_box) and not offer.has_reference_models:
            return f"{self.name}: needs the reference models themselves (not only their predictions)"
        return None

    def unmet_need(self, n_references: int, has_in_models: bool, n_population: int,
                   has_model: bool = False, has_white_box: bool = False) -> str | None:
        """:meth:`unmet_need_in` for an audit about to run (an audit with the model has the records and
        will have its reference models). has_white_box: the model's parameters are readable."""
        return self.unmet_need_in(SourceOffer(n_references, has_in_models, n_population, has_model, has_white_box,
                                              has_reference_models=True, has_records=has_model))

    def unmet_need_of(self, inputs: AttackInputs) -> str | None:
        """:meth:`unmet_need_in` for signals already computed (what they hold decides)."""
        return self.unmet_need_in(SourceOffer.of_inputs(inputs))


def _label_only(name: str, function: Callable[..., AttackScores], description: str, cost: float,
                calibrated: bool = False, **extra) -> AttackSpec:
    return AttackSpec(name, function, "label-only", description, needs_references=calibrated, seeded=True,
                      cost=cost, needs_model=True, **extra)


def _shokri(kind: str, function: Callable[..., AttackScores], label: str, cost: float) -> AttackSpec:
    return AttackSpec(f"shokri-{kind}", function, "black-box",
                      f"Shokri et al. shadow-model attack, per-class {label} attack models",
                      needs_references=True, seeded=True, cost=cost, params=shokri.ShokriParams)


_BAVARIA_N = with_defaults(bavaria.BavariaParams, "BavariaNParams", predictive="n")

ATTACKS: dict[str, AttackSpec] = {s.name: s for s in [
    AttackSpec("threshold-confidence", threshold.threshold_confidence, "black-box",
               "true-class confidence above a calibrated threshold", params=threshold.ThresholdParams),
    AttackSpec("threshold-loss", threshold.threshold_loss, "black-box",
               "cross-entropy loss below a calibrated threshold (Yeom et al.)"),
    AttackSpec("threshold-entropy", threshold.threshold_entropy, "black-box",
               "prediction entropy below a calibrated threshold", params=threshold.ThresholdParams),
    AttackSpec("threshold-modified-entropy", threshold.threshold_modified_entropy, "black-box",
               "Song & Mittal modified entropy below a calibrated threshold", cost=0.4,
               params=threshold.ThresholdParams),
    _shokri("lr", shokri.shokri_lr, "logistic-regression", 0.1),
    _shokri("dt", shokri.shokri_dt, "decision-tree", 0.1),
    _shokri("linear-svm", shokri.shokri_linear_svm, "linear SVM", 0.3),
    _shokri("rbf-svm", shokri.shokri_rbf_svm, "RBF SVM", 1.2),
    _shokri("rf", shokri.shokri_rf, "random-forest", 1.8),
    _shokri("mlp", shokri.shokri_mlp, "MLP", 1.0),
    AttackSpec("lira-online", lira.lira_online, "black-box",
               "LiRA (Carlini et al. 2022) online: Gaussian likelihood ratio of IN vs OUT reference models "
               "(per-example variance from 64 models, the paper's global variance below)",
               needs_references=True, needs_in_models=True, cost=0.3, params=lira.LiraParams),
    AttackSpec("lira-offline", lira.lira_offline, "black-box",
               "LiRA (Carlini et al. 2022) offline: one-sided Gaussian test against OUT reference models only",
               needs_references=True, cost=0.3, params=lira.LiraParams),
    AttackSpec("lira-online-moderated-offsets", lira.lira_online_moderated_offsets, "black-box",
               "lira-online with empirical-Bayes moderated variances (Student-t) and each model's local "
               "confidence bias removed (population neighbours)",
               needs_references=True, needs_in_models=True, cost=0.6,
               variant_of="lira-online", uses_population=True),
    AttackSpec("lira-offline-moderated-offsets", lira.lira_offline_moderated_offsets, "black-box",
               "lira-offline with empirical-Bayes moderated variances (Student-t) and each model's local "
               "confidence bias removed (population neighbours)",
               needs_references=True, cost=0.5, variant_of="lira-offline", uses_population=True),
    AttackSpec("rmia", rmia.rmia, "black-box",
               "RMIA (Zarifzadeh et al. 2024): likelihood ratio Pr(x|target)/Pr(x) against population "
               "records (softmax at T=1, offline a)",
               needs_references=True, needs_population=True, cost=0.3, params=rmia.RmiaParams),
    AttackSpec("rmia-tempered-offsets", rmia.rmia_tempered_offsets, "black-box",
               "rmia with a softmax temperature picked on held-out reference models, each model's local "
               "confidence bias removed, a fitted to IN/OUT models, equal counts ordered by ratio",
               needs_references=True, needs_population=True, cost=1.3, variant_of="rmia",
               params=rmia.RmiaTemperedParams),
    AttackSpec("population", population.population, "black-box",
               "Attack-P (Ye et al. 2022): loss percentile among population records, no reference models",
               needs_population=True, cost=0.01, params=population.PopulationParams),
    AttackSpec("rmia-offline", rmia_offline.rmia_offline, "black-box",
               "RMIA (Zarifzadeh et al. 2024) offline: OUT reference models only, a chosen as the paper does "
               "(one reference model as the target, the a of highest AUC)",
               needs_references=True, needs_population=True, cost=0.5, params=rmia_offline.RmiaOfflineParams),
    AttackSpec("qmia", torch_attacks.qmia, "black-box",
               "QMIA (Bertran et al. 2023): an MLP fitted on population records predicts the mean and spread "
               "of the target's logit margin per record (the authors' Gaussian form), no reference models",
               needs_population=True, seeded=True, cost=7.5, needs_records=True, params=torch_attacks.QmiaParams),
    AttackSpec("qmia-pinball", torch_attacks.qmia, "black-box",
               "QMIA with the paper's pinball loss: gradient-boosted trees predict each record's 99% quantile "
               "of the target's logit margin among population records", needs_population=True, seeded=True,
               cost=6.0, needs_records=True,
               params=with_defaults(torch_attacks.QmiaParams, "QmiaPinballParams", regressor="pinball-trees")),
    AttackSpec("base-online", base.base_online, "black-box",
               "BASE (Lassila et al. 2025) online: log true-class probability (T=2) less the log mean over "
               "all reference models", needs_references=True, needs_in_models=True, cost=0.1,
               params=base.BaseOnlineParams),
    AttackSpec("base-offline", base.base_offline, "black-box",
               "BASE (Lassila et al. 2025) offline: log true-class probability (T=2) less 0.33 x the log mean "
               "over the OUT reference models", needs_references=True, cost=0.1, params=base.BaseOfflineParams),
    AttackSpec("bavaria-online", bavaria.bavaria_online, "black-box",
               "BaVarIA-t (Brännvall 2026) online: LiRA with normal-inverse-gamma priors on each record's "
               "IN / OUT mean and variance (Student-t predictives)",
               needs_references=True, needs_in_models=True, cost=0.3, params=bavaria.BavariaParams),
    AttackSpec("bavaria-offline", bavaria.bavaria_offline, "black-box",
               "BaVarIA-t (Brännvall 2026) offline: one-sided test against the OUT Student-t predictive",
               needs_references=True, cost=0.3, params=bavaria.BavariaParams),
    AttackSpec("bavaria-n-online", bavaria.bavaria_online, "black-box",
               "BaVarIA-n (Brännvall 2026) online: normal predictives with the posterior mean variance",
               needs_references=True, needs_in_models=True, cost=0.3, params=_BAVARIA_N),
    AttackSpec("bavaria-n-offline", bavaria.bavaria_offline, "black-box",
               "BaVarIA-n (Brännvall 2026) offline: one-sided test against the OUT normal predictive",
               needs_references=True, cost=0.3, params=_BAVARIA_N),
    _label_only("label-only-gap", label_only_gap.label_only_gap,
                "gap attack (Yeom et al. 2018 / Choquette-Choo et al. 2021): member when the target's label "
                "is correct; one label query per record", 0.01),
    _label_only("label-only-augmentation", label_only_augmentation.label_only_augmentation,
                "Choquette-Choo et al. 2021: how many augmented copies (images: flips, shifts, small "
                "rotations; tabular: noise or feature flips) keep the correct label", 0.2,
                params=label_only_augmentation.AugmentationParams),
    _label_only("label-only-augmentation-lira", label_only_augmentation.label_only_augmentation_lira,
                "label-only-augmentation scored against each record's IN / OUT reference-model "
                "distribution (LiRA-style likelihood ratio)", 0.4, calibrated=True,
                variant_of="label-only-augmentation", params=label_only_augmentation.AugmentationParams),
    _label_only("label-only-boundary", torch_attacks.label_only_boundary,
                "Choquette-Choo et al. 2021: L2 distance to the decision boundary by a query-budgeted "
                "HopSkipJump-style search, batched over records", 2.0, params=torch_attacks.BoundaryParams),
    _label_only("label-only-boundary-lira", torch_attacks.label_only_boundary_lira,
                "label-only-boundary scored against each record's IN / OUT reference-model boundary "
                "distances (LiRA-style likelihood ratio)", 6.0, calibrated=True, variant_of="label-only-boundary",
                params=torch_attacks.BoundaryLiraParams),
    _label_only("label-only-noise", label_only_noise.label_only_noise,
                "Choquette-Choo et al. 2021's cheaper boundary estimate: how often the label survives "
                "Gaussian noise of growing size", 0.2, params=label_only_noise.NoiseParams),
    _label_only("label-only-noise-lira", label_only_noise.label_only_noise_lira,
                "label-only-noise scored against each record's IN / OUT reference-model distribution "
                "(LiRA-style likelihood ratio)", 0.4, calibrated=True, variant_of="label-only-noise",
                params=label_only_noise.NoiseParams),
    AttackSpec("gradient-norm", torch_attacks.gradient_norm, "white-box",
               "norm of the loss gradient w.r.t. all parameters (per example, torch.func), smaller = member",
               cost=0.3, needs_white_box=True, params=torch_attacks.GradientNormParams),
    AttackSpec("gradient-norm-lira", torch_attacks.gradient_norm_lira, "white-box",
               "gradient-norm scored against each record's IN / OUT reference-model gradient norms "
               "(LiRA-style likelihood ratio)", needs_references=True, cost=0.6, needs_white_box=True,
               variant_of="gradient-norm", params=torch_attacks.GradientNormParams),
]}


AUTO = "auto"
"""The default attack set: what the threat model makes sensible (:func:`attack_specs`)."""


def attack_specs(names: list[str], labels_only: bool = False) -> list[AttackSpec]:
    """Specs for a list of names; "all" expands to every attack, "auto" to the attacks that read the
    target's scores (black-box and white-box), or, when the target releases only labels
    (``labels_only``), to those plus the label-only attacks. Unknown name -> InputError."""
    out: list[AttackSpec] = []
    for name in names:
        if name in ("all", AUTO):
            chosen = [s for s in ATTACKS.values()
                      if name == "all" or labels_only or s.threat_model != "label-only"]
            out.extend(s for s in chosen if s not in out)
        elif name in ATTACKS:
            if ATTACKS[name] not in out:
                out.append(ATTACKS[name])
        else:
            raise InputError(f"--attacks: unknown attack {name!r} (known: {', '.join(ATTACKS)}, auto, all)")
    if not out:
        raise InputError("--attacks: no attack named")
    return out


def left_out_by_auto(names: list[str], labels_only: bool = False) -> list[str]:
    """The attacks that "all" would add to ``names`` but "auto" leaves out (label-only searches)."""
    if AUTO not in names or labels_only:
        return []
    chosen = {s.name for s in attack_specs(names, labels_only)}
    return [s.name for s in ATTACKS.values() if s.name not in chosen]

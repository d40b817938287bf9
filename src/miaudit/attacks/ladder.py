"""The attack ladder: which registered attacks are candidates for an audit, by its budget of
reference models (data only; choosing among the candidates is :mod:`miaudit.attacks.choice`'s job).

Rungs by the number of reference models K:
- K = 0: the zero-reference attacks (QMIA, Attack-P, the threshold attacks);
- 1 <= K < FEW_MAX_EXCLUSIVE (16): the few-reference attacks (BASE, BaVarIA, RMIA, LiRA offline and
  miaudit's variants of them), which are built for a handful of models;
- K >= 16: LiRA online (per-example variances want many models) and every other score-based attack.
Each rung keeps only attacks whose needs the audit meets (online attacks need IN models, RMIA and
QMIA population records). Label-only and white-box attacks are never candidates: they answer
another threat model.
"""
from __future__ import annotations

from miaudit.attacks.registry import ATTACKS
from miaudit.signals.offer import SourceOffer

FEW_MAX_EXCLUSIVE = 16
"""From this many reference models on, the many-reference rung."""
ZERO_REFERENCE = ("qmia", "population", "threshold-loss", "threshold-confidence", "threshold-entropy",
                  "threshold-modified-entropy")
FEW_REFERENCE = ("base-online", "base-offline", "bavaria-online", "bavaria-offline", "bavaria-n-online",
                 "bavaria-n-offline", "rmia", "rmia-offline", "rmia-tempered-offsets", "lira-offline",
                 "lira-offline-moderated-offsets")
MANY_REFERENCE = ("lira-online", "lira-online-moderated-offsets", *FEW_REFERENCE)


def ladder_candidates(n_references: int, has_in_models: bool, n_population: int) -> list[str]:
    """The candidate attack names for an audit with ``n_references`` reference models (some trained
    on the audited records when ``has_in_models``) and ``n_population`` population records, in the
    rung's order; attacks whose needs are unmet are left out. Negative counts: ValueError."""
    if n_references < 0 or n_population < 0:
        raise ValueError(f"ladder_candidates: counts must be >= 0, got {n_references} references and "
                         f"{n_population} population records")
    if n_references == 0:
        rung = ZERO_REFERENCE
    elif n_references < FEW_MAX_EXCLUSIVE:
        rung = FEW_REFERENCE
    else:
        rung = MANY_REFERENCE
    offer = SourceOffer(n_references, has_in_models and n_references > 0, n_population, has_model=True,
                        has_reference_models=True, has_records=True)
    return [name for name in rung if ATTACKS[name].unmet_need_in(offer) is None]


def rung_of(n_references: int) -> str:
    """The rung's name for K reference models: "zero-reference", "few-reference" or "many-reference"."""
    if n_references == 0:
        return "zero-reference"
    return "few-reference" if n_references < FEW_MAX_EXCLUSIVE else "many-reference"


def auto_block(ran: list[str], n_references: int, has_in_models: bool, n_population: int,
               labels_only: bool = False) -> dict:
    """results.json's ``attack_choice`` block of an ``--attacks auto`` audit before the choice: the
    rung, its candidates among the attacks that run (``ran``), and why. A label-only target has no
    score-based rung: every attack that ran is a candidate. :func:`with_choice` adds the choice."""
    rung = rung_of(n_references)
    ladder = [] if labels_only else [n for n in ladder_candidates(n_references, has_in_models, n_population)
                                     if n in ran]
    why = ("the target releases labels only: the label-only attacks and the score attacks on one-hot outputs "
           "run, all of them candidates" if labels_only else
           f"the target releases scores: the attacks that read them run (label-only searches only when named "
           f"or with --attacks all); with {n_references} reference models the {rung} rung's attacks are the "
           f"candidates for the headline")
    return {"rung": rung, "candidates": ladder or list(ran), "ran": list(ran), "why": why}


def with_choice(block: dict, choice) -> dict:
    """The block with the headline choice (an :class:`miaudit.attacks.choice.AttackChoice`) filled in."""
    return {**block, "chosen": choice.chosen, "chosen_by": choice.chosen_by,
            "why": f"{block['why']}; {choice.why}", "scores": {k: dict(v) for k, v in choice.candidates.items()}}

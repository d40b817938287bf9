"""--attacks auto: the ladder's rung by the number of reference models, and the headline chosen among
the rung's candidates without the audited records' labels."""
from __future__ import annotations

import pytest

import miaudit
from miaudit.attacks.ladder import FEW_REFERENCE, MANY_REFERENCE, ZERO_REFERENCE


@pytest.mark.parametrize("k, rung, pool", [(0, "zero-reference", ZERO_REFERENCE),
                                           (4, "few-reference", FEW_REFERENCE),
                                           (16, "many-reference", MANY_REFERENCE)])
def test_auto_picks_the_headline_among_the_rungs_candidates(k, rung, pool):
    result = miaudit.audit(dataset="digits", target="logreg", members=300, reference_models=k, population=400,
                           progress=False)
    block = result.to_dict()["attack_choice"]
    assert block["rung"] == rung and set(block["candidates"]) <= set(pool) and block["candidates"]
    assert block["chosen"] in block["candidates"] and set(block["candidates"]) <= set(block["ran"])
    assert result.to_dict()["verdict"]["attack"] == block["chosen"] == result.choice.chosen
    if k == 0:  # no reference model to play the target: the rule fixed in advance, QMIA first
        assert block["chosen_by"] == "rule" and block["chosen"] == "qmia"
    else:  # scored on reference models playing the target, only the rung's candidates
        assert block["chosen_by"] == "pseudo-targets" and set(block["scores"]) <= set(block["candidates"])


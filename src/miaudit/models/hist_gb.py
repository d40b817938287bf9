"""hist-gb: scikit-learn's HistGradientBoostingClassifier as a target and reference family."""
from __future__ import annotations

from typing import TYPE_CHECKING

from miaudit.models.sklearn_family import SklearnFamily

if TYPE_CHECKING:
    from sklearn.ensemble import HistGradientBoostingClassifier


def make_hist_gb(name: str, seed: int) -> HistGradientBoostingClassifier:
    """Histogram gradient boosting with scikit-learn's defaults (100 iterations of depth-unlimited trees
    with 31 leaves; early stopping only above 10,000 records), its randomness seeded by ``seed``."""
    from sklearn.ensemble import HistGradientBoostingClassifier  # made here: the registry loads no scikit-learn

    return HistGradientBoostingClassifier(random_state=seed)


HIST_GB = SklearnFamily("hist-gb", ("hist-gb",), make_hist_gb, ("miaudit.models.hist_gb",))

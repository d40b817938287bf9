"""report.html: one self-contained page (inline CSS, base64 PNG images, no scripts)."""
from __future__ import annotations

import base64
import math
from typing import TYPE_CHECKING, Any

import jinja2

from miaudit.report.plots import figure_png, histogram_figure, roc_figure

if TYPE_CHECKING:
    from miaudit.results import AuditResult

_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>miaudit report: {{ dataset }} / {{ t.model }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0; }
th, td { padding: 0.25em 0.6em; border-bottom: 1px solid #e4e4e4; text-align: right; }
th { background: #f3f3f3; } td.name, th.name { text-align: left; }
tr.best td { font-weight: 600; }
img { max-width: 100%; border: 1px solid #eee; }
.meta { color: #555; font-size: 0.9em; }
</style>
</head>
<body>
<h1>Membership-inference audit: {{ dataset }} / {{ t.model }}</h1>
<p class="meta">miaudit {{ version }}</p>

<h2>Configuration</h2>
<table>
{% for key, value in config %}<tr><td class="name">{{ key }}</td><td class="name">{{ value }}</td></tr>
{% endfor %}</table>

<h2>Target model</h2>
<table>
<tr><th class="name">model</th><th>train accuracy</th><th>test accuracy</th><th>generalization gap</th>
<th>members</th><th>non-members</th></tr>
<tr><td class="name">{{ t.model }}</td><td>{{ t.train_accuracy|num }}</td><td>{{ t.test_accuracy|num }}</td>
<td>{{ t.generalization_gap|signed }}</td><td>{{ t.members }}</td><td>{{ t.non_members }}</td></tr>
</table>

<h2>Attacks (best AUC first)</h2>
<table>
<tr><th class="name">attack</th><th class="name">threat model</th><th>AUC</th><th>TPR@0.1% FPR</th>
<th>TPR@1% FPR</th><th>accuracy</th><th>precision</th><th>recall</th><th>F1</th><th>advantage</th>
<th>&epsilon; lower bound</th><th>seconds</th></tr>
{% for a in attacks %}{% set m = a.metrics %}<tr{% if loop.first %} class="best"{% endif %}>
<td class="name">{{ a.name }}</td><td class="name">{{ a.threat_model }}</td><td>{{ m.auc|num }}</td>
<td>{{ m.tpr_at_fpr[0.001]|pct }}</td><td>{{ m.tpr_at_fpr[0.01]|pct }}</td><td>{{ m.accuracy|num }}</td>
<td>{{ m.precision|num }}</td><td>{{ m.recall|num }}</td><td>{{ m.f1|num }}</td><td>{{ m.advantage|num }}</td>
<td>{{ m.epsilon_lower_bound|num(2) }}</td><td>{{ a.seconds|num(2) }}</td></tr>
{% endfor %}</table>
{% if attacks %}<p class="meta">&epsilon; lower bound: Clopper&ndash;Pearson at
{{ (attacks[0].metrics.epsilon_confidence * 100)|num(0) }}% confidence, &delta; = {{ attacks[0].metrics.delta }}.
Accuracy, precision and recall are at each attack's own decision threshold.</p>{% endif %}

<h2>ROC curves (log-log)</h2>
<img src="data:image/png;base64,{{ roc_png }}" alt="ROC curves of all attacks, log-log">

<h2>Score distributions</h2>
<img src="data:image/png;base64,{{ hist_png }}" alt="member and non-member score histograms per attack">

{% if best %}<h2>Per class: {{ best.name }}</h2>
{% if per_class %}<table>
<tr><th class="name">class</th><th>members</th><th>non-members</th><th>AUC</th><th>accuracy</th></tr>
{% for label, row in per_class %}<tr><td class="name">{{ label }}</td><td>{{ row.n_members }}</td>
<td>{{ row.n_non_members }}</td><td>{{ row.auc|num }}</td><td>{{ row.accuracy|num }}</td></tr>
{% endfor %}</table>{% else %}<p>No per-class breakdown available.</p>{% endif %}{% endif %}

<h2>Notes</h2>
{% if notes %}<ul>{% for note in notes %}<li>{{ note }}</li>{% endfor %}</ul>{% else %}<p>None.</p>{% endif %}

<h2>Timing</h2>
<table>
{% for key, value in timing %}<tr><td class="name">{{ key }}</td><td>{{ value|num(2) }}</td></tr>
{% endfor %}</table>
</body>
</html>
"""


def _num(value: Any, digits: int = 3) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "—" if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}" if math.isfinite(value) else "—"


def _pct(value: Any) -> str:
    return "—" if value is None else f"{value:.2%}"


def _signed(value: float) -> str:
    return f"{value:+.3f}"


_ENV = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
_ENV.filters.update(num=_num, pct=_pct, signed=_signed)


def render_html(result: AuditResult, roc_png: bytes | None = None,
                histograms_png: bytes | None = None) -> str:
    """The whole report as one HTML string; figures are rendered unless their PNG bytes are given."""
    attacks = sorted(result.attacks, key=lambda a: -a.metrics.auc)
    best = attacks[0] if attacks else None
    roc_png = roc_png if roc_png is not None else figure_png(roc_figure(result))
    histograms_png = histograms_png if histograms_png is not None else figure_png(histogram_figure(result))
    return _ENV.from_string(_TEMPLATE).render(
        dataset=result.config.get("dataset", "?"),
        version=result.miaudit_version,
        config=sorted(result.config.items()),
        t=result.target,
        attacks=attacks,
        best=best,
        per_class=sorted(best.metrics.per_class.items()) if best else [],
        notes=result.notes,
        timing=list(result.timing.items()),
        roc_png=base64.b64encode(roc_png).decode("ascii"),
        hist_png=base64.b64encode(histograms_png).decode("ascii"),
    )

"""report.html: one self-contained page (inline CSS, base64 PNG images, no scripts, no external URLs).

The page opens with the verdict and the headline attack's rates (report/findings.py), then the most
exposed records and per-class exposure, the attacks table, the figures; configuration, timing and notes
come last, folded. The markup is report/template.html.j2.
"""
from __future__ import annotations

import base64
import math
from importlib import resources
from typing import TYPE_CHECKING, Any

import jinja2

from miaudit.metrics.leak_test import p_phrase
from miaudit.report import findings
from miaudit.report import records as tabular
from miaudit.report.plots import figure_png, histogram_figure, roc_figure
from miaudit.report.thumbnails import thumbnails

if TYPE_CHECKING:
    from miaudit.report.results import AuditResult


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _num(value: Any, digits: int = 3) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "—" if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}" if math.isfinite(value) else "—"


def _pct(value: Any) -> str:
    """A fraction as a percentage: one decimal from 1%, two significant digits below."""
    if not _finite(value):
        return "—"
    p = 100.0 * value
    if p == 0:
        return "0%"
    return f"{p:.1f}%" if abs(p) >= 1 else f"{p:.2g}%"


def _pct_interval(ci: tuple[float, float]) -> str:
    return f"{_pct(ci[0]).rstrip('%')}–{_pct(ci[1])}"


def _num_interval(ci: tuple[float, float]) -> str:
    return f"{_num(ci[0])}–{_num(ci[1])}"


def _one_in(level: float) -> str:
    """0.001 -> '1 in 1,000'."""
    return f"1 in {round(1.0 / level):,}"


def _signed(value: float) -> str:
    return f"{value:+.3f}"


def _signed_points(value: float) -> str:
    return f"{100.0 * value:+.1f} points"


_ENV = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True)
_ENV.filters.update(num=_num, pct=_pct, pct_interval=_pct_interval, num_interval=_num_interval, one_in=_one_in,
                    signed=_signed, signed_points=_signed_points, count=lambda n: f"{int(n):,}",
                    g=lambda v: f"{v:g}", confidence=lambda c: f"{100.0 * c:g}%",
                    p=p_phrase)
_TEMPLATE = _ENV.from_string(resources.files("miaudit.report").joinpath("template.html.j2").read_text("utf-8"))


def render_html(result: AuditResult, roc_png: bytes | None = None,
                histograms_png: bytes | None = None) -> str:
    """The whole report as one HTML string; figures are rendered unless their PNG bytes are given."""
    ranked = findings.rank_attacks(result.attacks)
    best = result.headline
    roc_png = roc_png if roc_png is not None else figure_png(roc_figure(result))
    histograms_png = histograms_png if histograms_png is not None else figure_png(histogram_figure(result))
    context: dict[str, Any] = {"best": best}
    if best is not None:
        m = best.metrics
        exposed = findings.exposed_records(result, best)
        records = result.records if result.records is not None and len(result.records) == len(result.labels) else None
        about, needs = findings.attack_needs(best, result.config.get("reference_models"))
        context.update(
            verdict=findings.outcome_verdict(best, result.membership), rules=findings.VERDICT_RULES,
            choice=result.choice, eps_in_headline=findings.headline_epsilon(m),
            head=findings.rate_at(m, findings.HEADLINE_FPR), second=findings.rate_at(m, findings.SECOND_FPR),
            auc_ci=m.auc_ci, eps=findings.epsilon_audit(m), about=about, needs=needs,
            exposed=exposed, tied=findings.tied_beyond(best, exposed),
            thumbs=thumbnails(records, [r.position for r in exposed]),
            class_names=tabular.class_names(result),
            values=tabular.original_values(result, [r.position for r in exposed]),
            per_class=findings.class_exposure(m),
        )
    table = [{"outcome": a, "auc_ci": a.metrics.auc_ci, "eps": findings.epsilon_audit(a.metrics),
              "rates": [findings.rate_at(a.metrics, level) for level in (findings.HEADLINE_FPR, findings.SECOND_FPR)]}
             for a in ranked]
    return _TEMPLATE.render(
        context,
        dataset=result.config.get("dataset", "?"),
        version=result.miaudit_version,
        config=sorted(result.config.items()),
        t=result.target,
        attacks=ranked,
        table=table,
        delta=ranked[0].metrics.delta if ranked else float("nan"),
        notes=result.notes,
        timing=list(result.timing.items()),
        roc_png=base64.b64encode(roc_png).decode("ascii"),
        hist_png=base64.b64encode(histograms_png).decode("ascii"),
    )

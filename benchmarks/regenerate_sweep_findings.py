"""Rewrite the findings of docs/sweep-results.md with the current verdict (Welch / TOST with a margin)
from the means and 95% Student-t intervals stored in its tables (the per-seed values were not kept).

Each point's per-seed SD is recovered from its interval: sd = half-width * sqrt(n) / t(0.975, n - 1),
n = 3 seeds; the upper half is used when the interval was cut at 0 or 1, and a zero-width interval
(all seeds equal) gets the metric's resolution (seed_stats.resolution, members from the section's
settings). Zero-width cells of the tables are replaced by the floored interval; other cells stay as
stored. The values were printed to 3 decimals (TPR to 0.1 points), so recovered SDs are approximate.

    python benchmarks/regenerate_sweep_findings.py [docs/sweep-results.md]
"""
from __future__ import annotations

import ast
import math
import re
import sys
from pathlib import Path

from scipy import stats

from miaudit.sweeps.experiments import EXPERIMENTS, builtin
from miaudit.sweeps.report import TABLE_METRICS
from miaudit.sweeps.seed_stats import resolution
from miaudit.sweeps.spec import make_spec
from miaudit.sweeps.verdict import finding

SEEDS = 3
CELL = re.compile(r"^(-?[\d.]+) \[(-?[\d.]+), (-?[\d.]+)\](%?)$")
T = float(stats.t.ppf(0.975, SEEDS - 1))


def _stat(cell: str, metric: str, members: int | None) -> dict | None:
    """mean / ci / sd / n of a table cell "0.625 [0.610, 0.640]" (or "0.1 [0.0, 0.4]%")."""
    m = CELL.match(cell.strip())
    if not m:
        return None
    scale = 0.01 if m.group(4) else 1.0
    mean, lo, hi = (scale * float(m.group(i)) for i in (1, 2, 3))
    upper = math.inf if metric == "epsilon_lower_bound" else 1.0
    if hi - lo <= 0:
        sd = resolution(metric, members, members)
    else:
        half = (hi - mean) if (lo <= 0.0 or hi >= upper) else (hi - lo) / 2
        sd = max(half * math.sqrt(SEEDS) / T, resolution(metric, members, members))
    return {"mean": mean, "ci": [lo, hi], "sd": sd, "n": SEEDS}


def _floored_cell(cell: str, metric: str, members: int | None) -> str:
    """A zero-width cell rewritten with the resolution floor; other cells unchanged."""
    m = CELL.match(cell.strip())
    if not m or float(m.group(2)) != float(m.group(3)):
        return cell
    percent = bool(m.group(4))
    scale = 100.0 if percent else 1.0
    mean = float(m.group(1)) / scale
    half = T * resolution(metric, members, members) / math.sqrt(SEEDS)
    upper = math.inf if metric == "epsilon_lower_bound" else 1.0
    lo, hi = max(mean - half, 0.0), min(mean + half, upper)
    digits = 1 if percent else 3
    return (f" {scale * mean:.{digits}f} [{scale * lo:.{digits}f}, {scale * hi:.{digits}f}]"
            f"{'%' if percent else ''} ")


def _members(header: str, label: str) -> int | None:
    m = re.match(r"^(\d+) records$", label)
    if m:
        return int(m.group(1))
    d = re.search(r"\{.*\}", header)
    return ast.literal_eval(d.group(0)).get("members") if d else None


def rewrite(text: str) -> tuple[str, list[str]]:
    """The document with every section's finding (and zero-width cells) rewritten; the new findings."""
    out, found = [], []
    sections = re.split(r"(?m)^(?=## )", text)
    for section in sections:
        m = re.match(r"## ([\w-]+) on ([\w-]+)", section)
        name = m and (m.group(1).removesuffix("-full"))
        if not m or name not in EXPERIMENTS:
            out.append(section)
            continue
        lines = section.splitlines(keepends=True)
        header = next((ln for ln in lines if "Reduced size" in ln or "Classic sizes" in ln), "")
        fields = builtin(name, m.group(2))
        metrics = ["auc", "tpr_at_0.001", "accuracy", "epsilon_lower_bound"]
        assert tuple(metrics) == TABLE_METRICS
        points, labels, new_lines = [], [], []
        for ln in lines:
            cells = ln.strip().strip("|").split("|")
            if ln.startswith("| ") and len(cells) >= 6 and CELL.match(cells[2].strip()):
                label, attack = cells[0].strip(), cells[1].strip()
                members = _members(header, label)
                labels.append(label) if label not in labels else None
                stat = _stat(cells[2 + metrics.index(fields["metric"])], fields["metric"], members)
                points.append({"setting": label, "attack": attack, **stat})
                cells[2:6] = [_floored_cell(c, k, members) for c, k in zip(cells[2:6], metrics)]
                ln = "|" + "|".join(cells) + "|\n"
            new_lines.append(ln)
        spec = make_spec({k: v for k, v in fields.items() if k not in ("points", "base")}
                         | {"points": [{"label": lb} for lb in labels]})
        verdict = finding(spec, points)
        words = f"{'supported' if verdict['supported'] else 'not supported'}; {verdict['outcome']}"
        line = f"**Finding** ({words}): {verdict['finding']}\n"
        found.append(f"{m.group(0)[3:]}: {line.strip()}")
        out.append("".join(line if ln.startswith("**Finding**") else ln for ln in new_lines))
    return "".join(out), found


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/sweep-results.md")
    text, found = rewrite(path.read_text())
    path.write_text(text)
    print("\n".join(found))


if __name__ == "__main__":
    main()

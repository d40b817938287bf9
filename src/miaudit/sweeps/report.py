"""A finished sweep's files: sweep.csv, sweep.md, PNG plots and sweep.html (sweep.json is run.py's)."""
from __future__ import annotations

import csv
import html
from pathlib import Path
from typing import Any

from miaudit.sweeps.spec import METRICS
from miaudit.sweeps.verdict import NAMES

TABLE_METRICS = ("auc", "tpr_at_0.001", "accuracy", "epsilon_lower_bound")


def write_outputs(doc: dict[str, Any], out: Path) -> dict[str, Path]:
    """Write sweep.csv, sweep.md, the plots and sweep.html into out; returns their paths."""
    paths = {"sweep.csv": out / "sweep.csv", "sweep.md": out / "sweep.md", "sweep.html": out / "sweep.html"}
    _write_csv(doc, paths["sweep.csv"])
    paths["sweep.md"].write_text(markdown(doc))
    plots = write_plots(doc, out)
    paths.update(plots)
    paths["sweep.html"].write_text(_html(doc, [p.name for p in plots.values()]))
    return paths


def _cell(stat: dict[str, Any] | None, percent: bool = False) -> str:
    if not stat or stat.get("mean") is None:
        return "–"
    scale, digits = (100.0, 1) if percent else (1.0, 3)
    lo, hi = stat["ci"]
    text = f"{scale * stat['mean']:.{digits}f}"
    if lo is not None:
        text += f" [{scale * lo:.{digits}f}, {scale * hi:.{digits}f}]"
    return text + ("%" if percent else "")


def rows(doc: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the summary table: one row per (point, attack)."""
    dp = any(p.get("accountant_epsilon") for p in doc["points"])
    header = ["setting", "attack", *(NAMES[m] for m in TABLE_METRICS), "test acc"] + (["accountant ε"] if dp else [])
    body = []
    for p in doc["points"]:
        m = p.get("metrics", {})
        row = [p["setting"], p["attack"] or "(failed: " + "; ".join(p.get("errors", [])) + ")"]
        row += [_cell(m.get(k), percent=k.startswith("tpr")) for k in TABLE_METRICS]
        row.append(_cell(p.get("test_accuracy")))
        if dp:
            row.append(_cell(p.get("accountant_epsilon")))
        body.append(row)
    return header, body


def markdown(doc: dict[str, Any]) -> str:
    header, body = rows(doc)
    seeds = doc["seeds"]
    lines = [f"# Sweep `{doc['experiment']}`", "", doc.get("description", ""), "",
             f"**Finding** ({_verdict_words(doc)}): {doc['finding']}", "",
             f"Mean over {seeds} seeds with the {100 * doc['confidence']:.0f}% Student-t interval of the mean "
             "(per-seed SD at least the metric's resolution)." + _test_line(doc)
             + ("" if doc.get("base", {}).get("coin_flip_members") else
                " The ε lower bound is an estimate here (a valid bound needs coin_flip_members = true)."), "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    if doc.get("overrides"):
        changed = ", ".join(f"`{k}={v}`" for k, v in doc["overrides"].items())
        lines += ["", f"Settings changed for every point: {changed}"]
    return "\n".join(lines) + "\n"


def _verdict_words(doc: dict[str, Any]) -> str:
    """'supported; no effect' (outcome missing in a sweep.json written before it existed)."""
    words = "supported" if doc["supported"] else "not supported"
    return f"{words}; {doc['outcome']}" if doc.get("outcome") else words


def _test_line(doc: dict[str, Any]) -> str:
    if doc.get("margin") is None:
        return ""
    return (f" Finding: {doc.get('test', 'Welch t-test and TOST')}; margin ±{doc['margin']:g} in "
            f"{NAMES.get(doc['metric'], doc['metric'])} units; 'no effect' only when TOST shows the difference "
            "inside the margin, else 'inconclusive'.")


def _write_csv(doc: dict[str, Any], path: Path) -> None:
    fields = ["setting", "attack", "n_seeds"] + [f"{m}_{s}" for m in METRICS for s in ("mean", "lo", "hi")]
    extra = ("train_accuracy", "test_accuracy", "accountant_epsilon")
    fields += [f"{m}_{s}" for m in extra for s in ("mean", "lo", "hi")]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(fields)
        for p in doc["points"]:
            stats = {**p.get("metrics", {}), **{k: p.get(k) for k in ("train_accuracy", "test_accuracy",
                                                                      "accountant_epsilon")}}
            row = [p["setting"], p["attack"] or "", len(p["seeds"])]
            for name in fields[3::3]:
                stat = stats.get(name.rsplit("_mean", 1)[0]) or {}
                lo, hi = stat.get("ci", [None, None])
                row += [_num(stat.get("mean")), _num(lo), _num(hi)]
            writer.writerow(row)


def _num(v: Any) -> str:
    return "" if v is None else f"{v:.6g}"


def write_plots(doc: dict[str, Any], out: Path) -> dict[str, Path]:
    """One PNG per metric (points on x, one line per attack, 95% intervals as error bars), and for
    sweeps that report test accuracy of differing points, a privacy-utility scatter."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(p["setting"] for p in doc["points"]))
    attacks = list(dict.fromkeys(p["attack"] for p in doc["points"] if p["attack"]))
    paths: dict[str, Path] = {}
    for metric in ("auc", "tpr_at_0.001", "accuracy"):
        fig, ax = plt.subplots(figsize=(max(5.0, 0.7 * len(labels) + 2), 3.6))
        for j, attack in enumerate(attacks):
            xs, ys, err = [], [], [[], []]
            for i, label in enumerate(labels):
                p = next((q for q in doc["points"] if q["setting"] == label and q["attack"] == attack), None)
                stat = (p or {}).get("metrics", {}).get(metric)
                if not stat or stat["mean"] is None:
                    continue
                lo, hi = stat["ci"]
                xs.append(i + 0.06 * (j - len(attacks) / 2))
                ys.append(stat["mean"])
                err[0].append(stat["mean"] - lo if lo is not None else 0)
                err[1].append(hi - stat["mean"] if hi is not None else 0)
            ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=attack)
        ax.set_xticks(range(len(labels)), labels, rotation=30 if len(labels) > 4 else 0, ha="right")
        ax.set_xlabel(doc.get("x_label", "setting"))
        ax.set_ylabel(NAMES[metric])
        ax.set_title(f"{doc['experiment']}: {NAMES[metric]}")
        if attacks:
            ax.legend(fontsize=7)
        fig.tight_layout()
        paths[f"{metric}.png"] = out / f"sweep_{metric.replace('.', '')}.png"
        fig.savefig(paths[f"{metric}.png"], dpi=110)
        plt.close(fig)
    attack = doc.get("finding_attack")
    pts = [p for p in doc["points"] if p["attack"] == attack and p.get("test_accuracy") and p.get("metrics")]
    if len(pts) >= 2:
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for p in pts:
            x, y = p["test_accuracy"]["mean"], p["metrics"]["auc"]["mean"]
            ax.scatter([x], [y])
            ax.annotate(p["setting"], (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel("target test accuracy")
        ax.set_ylabel(f"{attack} AUC")
        ax.set_title(f"{doc['experiment']}: privacy vs utility")
        fig.tight_layout()
        paths["tradeoff.png"] = out / "sweep_tradeoff.png"
        fig.savefig(paths["tradeoff.png"], dpi=110)
        plt.close(fig)
    return paths


def _html(doc: dict[str, Any], images: list[str]) -> str:
    header, body = rows(doc)
    esc = html.escape
    table = ("<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>"
             + "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in body) + "</table>")
    verdict = _verdict_words(doc)
    imgs = "".join(f'<img src="{esc(name)}" alt="{esc(name)}">' for name in images)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>miaudit sweep {esc(doc['experiment'])}</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,td:nth-child(2)"
            "{text-align:left}img{max-width:48%;margin:4px}</style></head><body>"
            f"<h1>Sweep: {esc(doc['experiment'])}</h1><p>{esc(doc.get('description', ''))}</p>"
            f"<p><b>Finding ({verdict}):</b> {esc(doc['finding'])}</p>"
            f"<p>Mean over {doc['seeds']} seeds, {100 * doc['confidence']:.0f}% Student-t intervals."
            f"{esc(_test_line(doc))}</p>"
            f"{table}<div>{imgs}</div></body></html>")

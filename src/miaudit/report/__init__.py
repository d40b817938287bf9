"""Writing an audit's outputs: results.json, report.html, roc.png, histograms.png, scores.csv/.parquet."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from miaudit.errors import InputError
from miaudit.report.files import parquet_available, write_results_json, write_scores_csv, write_scores_parquet
from miaudit.report.html import render_html
from miaudit.report.plots import figure_png, histogram_figure, roc_figure

if TYPE_CHECKING:
    from miaudit.report.results import AuditResult

__all__ = ["write_report"]


def write_report(result: AuditResult, out_dir: Path) -> dict[str, Path]:
    """Write every output file into ``out_dir`` (created if missing); returns {file name: path}.

    Files are rendered into a hidden temporary directory inside out_dir and moved into place with
    os.replace only once all of them exist, so a failure never leaves half-written output.
    Always: results.json, report.html, roc.png, histograms.png, scores.csv; scores.parquet when
    pyarrow is installed. Raises InputError when out_dir cannot be created or written.
    """
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".tmp-report-", dir=out_dir))
    except OSError:
        raise InputError(f"--out: {out_dir} is not writable") from None
    try:
        roc_png = figure_png(roc_figure(result))
        hist_png = figure_png(histogram_figure(result))
        (staging / "roc.png").write_bytes(roc_png)
        (staging / "histograms.png").write_bytes(hist_png)
        (staging / "report.html").write_text(render_html(result, roc_png, hist_png), encoding="utf-8")
        write_results_json(result, staging / "results.json")
        write_scores_csv(result, staging / "scores.csv")
        if parquet_available():
            write_scores_parquet(result, staging / "scores.parquet")
        written = {}
        # results.json last: its presence means the rest of the report is in place.
        for staged in sorted(staging.iterdir(), key=lambda f: (f.name == "results.json", f.name)):
            final = out_dir / staged.name
            os.replace(staged, final)
            written[staged.name] = final
        return written
    finally:
        shutil.rmtree(staging, ignore_errors=True)

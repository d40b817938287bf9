"""report: the files written for a small fake audit, the contract checker, atomic writing, and what
report.html tells a reader (headline, verdict, exposed records, thumbnails, folded configuration)."""
from __future__ import annotations

import base64
import dataclasses
import io
import json
import re
import subprocess
import sys
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from matplotlib import image as mpimg

import miaudit
from miaudit import report
from miaudit.data.registry import load_dataset
from miaudit.errors import InputError
from miaudit.metrics.attack_metrics import compute_metrics
from miaudit.metrics.leak_test import LeakTest
from miaudit.report import findings
from miaudit.report.files import parquet_available, scores_table
from miaudit.report.html import render_html
from miaudit.report.results import AttackOutcome, AuditResult, TargetSummary

CHECKER = "/work/shared/tools/check-results"
N = 300


def fake_result(strengths=(("threshold-loss", 0.5), ("lira-online", 2.0), ("rmia", 1.0)), n=N,
                records=None, tail=()) -> AuditResult:
    """Members score ``strength`` higher on average; attacks named in ``tail`` instead score 8 higher
    on a tenth of the members only (strong at low FPR, weak in AUC)."""
    rng = np.random.default_rng(0)
    membership = np.r_[np.ones(n // 2, bool), np.zeros(n - n // 2, bool)]
    labels = rng.integers(0, 4, n)
    attacks = []
    for name, strength in strengths:
        scores = rng.normal(size=n) + strength * membership
        if name in tail:
            scores = rng.normal(size=n) + 8.0 * (membership & (rng.random(n) < 0.1))
        metrics = compute_metrics(scores, membership, labels=labels)
        attacks.append(AttackOutcome(name, "black-box", scores, metrics, 0.25))
    return AuditResult(
        miaudit_version="0.1.0",
        config={"dataset": "digits", "target": "mlp", "members": n // 2, "reference_models": 4, "seed": 0},
        target=TargetSummary("mlp", 0.99, 0.9, n // 2, n - n // 2),
        attacks=attacks,
        timing={"total_s": 1.5, "train_target_s": 0.5, "train_reference_s": 1.0, "reference_models": 4},
        record_index=np.arange(1000, 1000 + n),
        membership=membership,
        labels=labels,
        notes=["offline attacks used <4> OUT models & no IN models"],
        records=records,
    )


class _Tables(HTMLParser):
    """Cell texts of every <table>, and the src of <img> tags in each cell."""

    def __init__(self):
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.images: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
            self.images.append([])
        elif tag == "tr":
            self.tables[-1].append([])
            self.images[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img" and self._cell is not None:
            self._cell.append(f"<img {dict(attrs)['src']}>")

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            text = " ".join(self._cell)
            self.tables[-1][-1].append(" ".join(t for t in text.split() if not t.startswith("<img")))
            self.images[-1][-1].append(next((t[5:-1] for t in self._cell if t.startswith("<img")), ""))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def exposed_table(page: str) -> tuple[list[dict[str, str]], list[str]]:
    """Rows of the "Most exposed records" table as {header: text}, and each row's image src ("" if none)."""
    parser = _Tables()
    parser.feed(page)
    for rows, images in zip(parser.tables, parser.images):
        if rows and "non-members scoring as high" in rows[0]:
            return [dict(zip(rows[0], r)) for r in rows[1:]], [next((s for s in i if s), "") for i in images[1:]]
    raise AssertionError("no exposed-records table")


def section(page: str, start: str, end: str) -> str:
    return page[page.index(start): page.index(end, page.index(start))]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    result = fake_result()
    out = tmp_path_factory.mktemp("run") / "nested" / "out"
    return result, out, report.write_report(result, out)


def test_writes_the_four_files(written):
    _, out, paths = written
    for name in ("results.json", "report.html", "roc.png", "scores.csv"):
        assert paths[name] == out / name and paths[name].stat().st_size > 0
    assert paths["roc.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp")]


def test_results_json_passes_contract_checker(written):
    _, out, _ = written
    run = subprocess.run([sys.executable, CHECKER, str(out / "results.json"),
                          "--attacks", "threshold-loss,lira-online,rmia"], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    doc = json.loads((out / "results.json").read_text())
    assert doc["attacks"][1]["name"] == "lira-online"
    assert set(doc["attacks"][1]["tpr_at_fpr"]) >= {"0.001", "0.01"}
    assert set(doc["attacks"][1]["per_class"]) == {"0", "1", "2", "3"}


def test_scores_csv_columns_and_values(written):
    result, out, paths = written
    table = pd.read_csv(out / "scores.csv")
    assert list(table.columns) == ["record_index", "label", "is_member", "threshold-loss", "lira-online", "rmia"]
    assert table["record_index"].tolist() == result.record_index.tolist()
    assert table["is_member"].astype(bool).tolist() == result.membership.tolist()
    assert np.array_equal(table["rmia"].to_numpy(), result.attack("rmia").scores)
    if parquet_available():
        pd.testing.assert_frame_equal(pd.read_parquet(paths["scores.parquet"]), scores_table(result))


def test_html_is_self_contained_and_escaped(written):
    _, out, _ = written
    page = (out / "report.html").read_text()
    for name in ("threshold-loss", "lira-online", "rmia"):
        assert name in page
    assert page.count('<img class="figure" src="data:image/png;base64,') == 2
    assert "<script" not in page.lower()
    assert not re.search(r"(https?:)?//[\w.-]+\.\w|@import|@font-face|url\(", page), "external reference"
    assert not re.search(r"""\s(src|href)=["'](?!data:)""", page), "a resource that is not inline"
    assert "&lt;4&gt; OUT models &amp; no IN models" in page


def test_page_order_headline_first_and_configuration_folded(written):
    _, out, _ = written
    page = (out / "report.html").read_text()
    order = [page.index(s) for s in ('class="verdict', "Most exposed records", "Exposure per class",
                                     "All attacks", "ROC curves", "Score distributions", "<summary>Configuration")]
    assert order == sorted(order)
    config = section(page, '<details class="fold"><summary>Configuration</summary>', "</details>")
    assert ">seed<" in config
    assert ">seed<" not in page[: page.index(config)] + page[page.index(config) + len(config):]
    for title in ("Timing", "Notes (1)"):
        assert re.search(rf"<details[^>]*>\s*<summary>{re.escape(title)}</summary>", page)
    assert page.rindex("<details") > page.index("Score distributions")


def test_headline_states_the_chosen_attack_as_in_results_json(tmp_path):
    # "tail" is strongest at 0.1% FPR on the audited labels, but the headline states the attack chosen
    # without them (here by rule: "shift"), as results.json's verdict says
    result = fake_result(strengths=(("shift", 1.5), ("tail", 0.0), ("weak", 0.3)), n=2400, tail=("tail",))
    report.write_report(result, tmp_path)
    doc = json.loads((tmp_path / "results.json").read_text())
    by_name = {a["name"]: a for a in doc["attacks"]}
    assert by_name["shift"]["auc"] > by_name["tail"]["auc"]
    assert by_name["tail"]["tpr_at_fpr"]["0.001"] > by_name["shift"]["tpr_at_fpr"]["0.001"]
    assert doc["verdict"]["attack"] == "shift" and doc["verdict"]["chosen_by"] == "rule"
    best = by_name[doc["verdict"]["attack"]]
    m = result.attack(best["name"]).metrics
    page = (tmp_path / "report.html").read_text()
    head = " ".join(section(page, 'class="verdict', "</section>").split())
    tpr, members = best["tpr_at_fpr"]["0.001"], doc["target"]["members"]
    assert "At 1 in 1,000 false accusations" in head and "below this audit" not in head
    assert f"({round(tpr * members):,} of {members:,}; 95% interval" in head
    assert f"{100 * tpr:.1f}%" in head
    lo, hi = m.tpr_at_fpr_ci[0.001]  # the interval the CLI prints, too
    if m.tpr_at_fpr_ci_below_resolution[0.001]:  # under 3,688 non-members: no lower end to show
        assert f"95% interval below resolution, at most {100 * hi:.1f}%" in head
    else:
        shown_lo = "0" if lo == 0 else f"{100 * lo:.1f}"
        assert f"{shown_lo}–{100 * hi:.1f}%" in head
    assert f"{best['auc']:.3f}" in head and "{:.3f}–{:.3f}".format(*m.auc_ci) in head
    assert f"Headline attack:</b> {best['name']}" in head
    assert "random identifies 0.1%" in head and "AUC 0.5" in head
    assert len(exposed_table(page)[0]) == findings.TOP_RECORDS
    assert f"Most exposed records ({best['name']})" in page


def test_headline_says_when_the_level_is_below_resolution(written):
    result, out, _ = written
    page = (out / "report.html").read_text()
    head = " ".join(section(page, 'class="verdict', "</section>").split())
    assert result.target.non_members < 1000
    assert "Without a single false accusation" in head and "At 1 in 1,000" not in head
    assert f"among {result.target.non_members} non-members is less than one" in head
    assert "Audit at least 1,000 non-members" in head


def test_exposed_records_are_the_highest_scores_in_scores_csv(written):
    result, out, _ = written
    page = (out / "report.html").read_text()
    best = findings.rank_attacks(result.attacks)[0].name
    table = pd.read_csv(out / "scores.csv")
    top = table.sort_values(best, ascending=False, kind="stable").head(findings.TOP_RECORDS)
    rows, images = exposed_table(page)
    assert [int(r["record"]) for r in rows] == top["record_index"].tolist()
    assert [int(r["label"]) for r in rows] == top["label"].tolist()
    assert [r["member?"] == "member" for r in rows] == top["is_member"].astype(bool).tolist()
    non_member_scores = table.loc[table["is_member"] == 0, best].to_numpy()
    for row, score in zip(rows, top[best]):
        above = int((non_member_scores >= score).sum())
        assert row["non-members scoring as high"] == f"{above} of {len(non_member_scores)}"
    assert not any(images) and "<th class=\"name\">image</th>" not in page


def test_tied_top_scores_are_listed_by_record_index_not_membership():
    result = fake_result(strengths=(("tied", 1.0),))
    outcome = result.attacks[0]
    scores = np.where(result.membership, 5.0, 0.0)  # members first by position, all of them tied
    scores[-20:] = 5.0                                 # and 20 non-members tied with them
    result.attacks[0] = dataclasses.replace(outcome, scores=scores)
    result.record_index = np.random.default_rng(2).permutation(N) + 1000
    rows, _ = exposed_table(render_html(result, b"png", b"png"))
    tied = np.flatnonzero(scores == 5.0)
    expected = np.sort(result.record_index[tied])[: findings.TOP_RECORDS]
    assert [int(r["record"]) for r in rows] == expected.tolist()
    page = " ".join(render_html(result, b"png", b"png").split())
    assert f"{len(tied) - findings.TOP_RECORDS} more records share the last score shown" in page


@pytest.mark.parametrize("auc, tpr, rejects, band", [
    (0.51, 0.002, False, "none"),
    (0.80, 0.10, False, "none"),       # large point estimates that the test cannot tell from chance
    (0.53, 0.002, True, "low"),
    (0.63, 0.004, True, "moderate"),
    (0.55, 0.02, True, "moderate"),
    (0.77, 0.004, True, "high"),
    (0.70, 0.06, True, "high"),
])
def test_verdict_bands(auc, tpr, rejects, band):
    base = fake_result(strengths=(("a", 1.0),)).attacks[0].metrics
    m = dataclasses.replace(base, auc=auc, auc_ci=(0.0, 1.0), tpr_at_fpr={**base.tpr_at_fpr, 0.001: tpr},
                            tpr_at_fpr_ci={**base.tpr_at_fpr_ci, 0.001: (0.0, 1.0)},
                            tpr_at_fpr_joint_ci={**base.tpr_at_fpr_joint_ci, 0.001: (0.0, 1.0)})
    test = LeakTest(0.001 if rejects else 0.5, rejects, 0.01, 0.001, 3, 0, 0.5)
    assert findings.verdict(m, test).band == band


def test_verdict_is_on_the_page():
    assert "High leakage" in render_html(fake_result(strengths=(("strong", 3.0),), n=2000), b"png", b"png")
    blind = fake_result(strengths=(("blind", 0.0),), n=2000)
    expected = findings.outcome_verdict(blind.attacks[0], blind.membership)
    page = render_html(blind, b"png", b"png")
    assert f'<span class="badge">{expected.title}</span>' in page
    assert ("no better than random guessing" in page) == (expected.band == "none")


def test_epsilon_sentence_says_bound_or_estimate():
    result = fake_result(strengths=(("rmia", 1.0),))
    m = result.attacks[0].metrics
    audit = m.epsilon_audit
    object.__setattr__(m, "epsilon_lower_bound", 1.234)
    object.__setattr__(m, "epsilon_audit", dataclasses.replace(audit, epsilon=1.234, valid=True))
    page = " ".join(render_html(result, b"png", b"png").split())
    assert "No training procedure with &epsilon; below 1.23 (&delta; = 1e-05) could produce this result" in page
    assert "&epsilon; &ge; 1.23" in page
    object.__setattr__(m, "epsilon_lower_bound", 0.0)
    object.__setattr__(m, "epsilon_audit", dataclasses.replace(audit, epsilon=0.0, valid=True))
    page = " ".join(render_html(result, b"png", b"png").split())
    assert "No training procedure" not in page and "rules out no &epsilon;" in page
    object.__setattr__(m, "epsilon_lower_bound", 1.234)
    object.__setattr__(m, "epsilon_audit", dataclasses.replace(
        audit, epsilon=1.234, valid=False, assumptions="members were not drawn by coin flips"))
    page = " ".join(render_html(result, b"png", b"png").split())
    assert "No training procedure" not in page and "&epsilon; &ge;" not in page
    assert "&epsilon; &asymp; 1.23. members were not drawn by coin flips" in page
    assert "estimate, not a bound" in page


def test_thumbnails_show_each_exposed_image_normalised():
    rng = np.random.default_rng(1)
    records = rng.normal(size=(N, 1, 6, 5)).astype(np.float32) * 3 + 7  # standardized-looking, not in [0, 1]
    result = fake_result(records=records)
    page = render_html(result, b"png", b"png")
    rows, images = exposed_table(page)
    assert len(images) == findings.TOP_RECORDS and all(s.startswith("data:image/png;base64,") for s in images)
    position = {int(r): i for i, r in enumerate(result.record_index)}
    for row, src in zip(rows, images):
        pixels = mpimg.imread(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))[..., 0]
        image = records[position[int(row["record"])], 0]
        assert pixels.shape == image.shape
        expected = (image - image.min()) / (image.max() - image.min())
        np.testing.assert_allclose(pixels, expected, atol=2 / 255)


def test_html_escapes_hostile_config():
    result = fake_result(strengths=(("threshold-loss", 1.0),))
    result.config["dataset"] = "<script>alert(1)</script>"
    page = render_html(result, b"png", b"png")
    assert "<script>" not in page and "&lt;script&gt;" in page


@pytest.mark.parametrize("dataset, images", [("digits", True), ("breast-cancer", False)])
def test_audit_report_thumbnails_are_the_dataset_records(dataset, images, tmp_path):
    result = miaudit.audit(dataset=dataset, target="naive-bayes", members=100, reference_models=0,
                           attacks=["threshold-loss"], cache=False, progress=False)
    page = render_html(result, b"png", b"png")
    rows, srcs = exposed_table(page)
    assert len(rows) == findings.TOP_RECORDS
    if not images:
        assert not any(srcs)
        return
    x = load_dataset(dataset).x
    for row, src in zip(rows, srcs):
        pixels = mpimg.imread(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))[..., 0]
        raw = x[int(row["record"]), 0]
        np.testing.assert_allclose(pixels, (raw - raw.min()) / (raw.max() - raw.min()), atol=2 / 255)


def test_out_dir_that_is_a_file_is_rejected(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="--out: .* is not writable"):
        report.write_report(fake_result(), blocker)
    with pytest.raises(InputError, match="--out"):
        report.write_report(fake_result(), blocker / "sub")


def test_failure_leaves_no_partial_output(tmp_path, monkeypatch):
    def broken(result, path):
        raise RuntimeError("disk full")

    monkeypatch.setattr(report, "write_scores_csv", broken)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        report.write_report(fake_result(strengths=(("rmia", 1.0),)), out)
    assert list(out.iterdir()) == []


def test_exposed_table_records_show_class_names_and_original_values(tmp_path):
    import html

    from tests.fixtures.census import census_frame, write_census_csv

    import miaudit
    from miaudit.report import findings

    path = write_census_csv(tmp_path / "adult.csv", n=400)
    result = miaudit.audit(dataset=str(path), label_column="income", target="tree", reference_models=0,
                           attacks=["threshold-loss"], progress=False)
    page = html.unescape(render_html(result, roc_png=b"", histograms_png=b""))
    frame = census_frame(400)
    for r in findings.exposed_records(result, result.attack("threshold-loss"))[:3]:
        row = frame.iloc[r.record_index]
        values = (f"age={row['age']}, workclass={row['workclass'].strip()}, fnlwgt={row['fnlwgt']}, "
                  f"education={row['education'].strip()}")
        assert values in page
        label = row["income"].strip()
        assert f"<td>{r.record_index}</td><td>{label}</td>" in page


def test_report_greys_numbers_within_chance_and_marks_classes_not_told_apart(tmp_path):
    """An attack without information (strength 0): its advantage and accuracy say "within chance";
    the strong attack's do not. Per-class rows overlapping the first class's interval carry the mark."""
    result = fake_result(strengths=(("lira-online", 2.0), ("threshold-loss", 0.0)))
    report.write_report(result, tmp_path)
    page = (tmp_path / "report.html").read_text()
    table = section(page, "<h2>All attacks", "</table>")
    rows = {name: table[table.index(f'<td class="name">{name}</td>'):] for name in ("lira-online", "threshold-loss")}
    noise_row = rows["threshold-loss"][:rows["threshold-loss"].index("</tr>")]
    strong_row = rows["lira-online"][:rows["lira-online"].index("</tr>")]
    assert noise_row.count("within chance") == 2 and 'class="chance"' in noise_row
    assert "within chance" not in strong_row and "chance &lt;" in strong_row
    per_class = findings.class_exposure(result.attack("lira-online").metrics)
    shown = section(page, "<h2>Exposure per class", "</table>")
    assert shown.count("&asymp;") == sum(r["like_top"] for r in per_class) >= 1  # 4 classes alike

"""The miaudit command line: a thin shell over miaudit.audit() and the registries."""
from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Optional

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from miaudit.attacks.params import describe
from miaudit.attacks.registry import ATTACKS
from miaudit.audit.config import make_config
from miaudit.audit.target_source import target_kind
from miaudit.data import list_datasets
from miaudit.errors import InputError
from miaudit.models.cache import check_cache_dir, default_cache_dir
from miaudit.models.families import find_family, target_names
from miaudit.progress import ProgressBoard
from miaudit.sweeps import make_sweep, parse_overrides, run_sweep
from miaudit.sweeps.report import markdown
from miaudit.targets.predictions import save_predictions as write_predictions

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Membership-inference privacy auditing for machine-learning classifiers.")
# A wide console when piped so the table is not truncated; the terminal's width otherwise.
out_console = Console(width=None if sys.stdout.isatty() else 150)
err_console = Console(stderr=True)


AUDIT_ONLY_OPTIONS = ("config", "out", "quiet", "save_target", "save_predictions")
"""Options of `miaudit audit` that are not settings of the audit (AuditConfig): where files go, display."""
NEGATED_FLAGS = {"no_cache": "cache"}
"""Flags that switch a config field (True by default) off."""


def config_settings(options: dict) -> dict:
    """`miaudit audit`'s options as make_config overrides. Every other option is named after an
    AuditConfig or TrainingRecipe field and passes through; None (not given) and an unset flag (False)
    leave the config file's or the default value; a negated flag sets its field to False."""
    settings = {}
    for name, value in options.items():
        if name in AUDIT_ONLY_OPTIONS:
            continue
        if name in NEGATED_FLAGS:
            settings[NEGATED_FLAGS[name]] = False if value else None
        else:
            settings[name] = None if value is False else value
    return settings


@app.command()
def audit(
    dataset: Optional[str] = typer.Option(None, help="Dataset name (see `miaudit datasets`) or a CSV/Parquet/NPZ path (default digits)."),
    target: Optional[str] = typer.Option(None, help=f"Target model: a name miaudit trains ({', '.join(target_names()).replace('mlp', 'mlp (default)', 1)}), a model file (.onnx, .pt, .pt2, .skops; .pkl/.joblib with --trust-pickle) or an http(s):// prediction-API URL."),
    members: Optional[int] = typer.Option(None, help="Records in the target's training set (default: a quarter of the dataset's records, at most 2500; with --member-column / --members-file, all the user's members)."),
    non_members: Optional[int] = typer.Option(None, help="Audited records the target never saw (default: = members)."),
    reference_models: Optional[int] = typer.Option(None, help="Reference / shadow models K (default 8)."),
    reference_data: Optional[str] = typer.Option(None, help="pool (default; LiRA/RMIA: halves of the audited records) or attacker (classic Shokri)."),
    attacks: Optional[str] = typer.Option(None, help="Comma-separated attack names (see `miaudit attacks`), auto (default: the attacks that read the target's scores; label-only ones too when it releases only labels) or all (adds the label-only searches: minutes to hours on large audits)."),
    attack_params: Optional[list[str]] = typer.Option(None, "--attack-param", help="An attack's parameter, NAME.PARAM=VALUE (e.g. rmia.gamma=2.5; repeatable; `miaudit attacks` lists them with defaults and bounds)."),
    out: Path = typer.Option(Path("runs/audit"), help="Output directory for results.json, report.html, roc.png, scores.csv (default runs/audit)."),
    seed: Optional[int] = typer.Option(None, help="Seed for splits, training and attacks (default 0)."),
    config: Optional[Path] = typer.Option(None, help="Settings file (.json, .toml, .yaml) with any option by its name (members, epochs, ...); flags override it."),
    epochs: Optional[int] = typer.Option(None, help="Training epochs of torch models, target and reference models (default 30)."),
    lr: Optional[float] = typer.Option(None, help="Learning rate (default 0.001)."),
    batch_size: Optional[int] = typer.Option(None, help="Minibatch size (default 64)."),
    optimizer: Optional[str] = typer.Option(None, help="adam (default), adamw or sgd."),
    weight_decay: Optional[float] = typer.Option(None, help="L2 weight decay (default 0)."),
    dropout: Optional[float] = typer.Option(None, help="Dropout probability of hidden layers (default 0)."),
    patience: Optional[int] = typer.Option(None, help="Early stopping: epochs without a lower validation loss (default 0 = off)."),
    validation_fraction: Optional[float] = typer.Option(None, help="Early stopping: held-out fraction of each model's training records (default 0.1)."),
    label_smoothing: Optional[float] = typer.Option(None, help="Label smoothing ε of the training targets (default 0)."),
    dp_epsilon: Optional[float] = typer.Option(None, help="DP-SGD: target ε (noise solved by Opacus's RDP accountant; default: no DP-SGD)."),
    dp_noise_multiplier: Optional[float] = typer.Option(None, help="DP-SGD: noise multiplier σ (instead of --dp-epsilon)."),
    dp_max_grad_norm: Optional[float] = typer.Option(None, help="DP-SGD: per-example clipping norm C (default 1.0)."),
    dp_delta: Optional[float] = typer.Option(None, help="DP-SGD: the accountant's δ (default 1e-5)."),
    hidden: Optional[str] = typer.Option(None, help="MLP hidden widths, e.g. 256 (default) or 512,256."),
    precision: Optional[str] = typer.Option(None, help="auto (default: bfloat16 where the CPU has bf16 units), float32 or bfloat16 (torch training)."),
    device: Optional[str] = typer.Option(None, help="auto (default: a CUDA GPU when torch sees one), cpu or cuda: where torch models train and reference stacks run."),
    input_scaling: Optional[str] = typer.Option(None, help="auto (default: standardized with the dataset's mean/std, 0/1 features left as they are), standard or none."),
    queries: Optional[int] = typer.Option(None, help="Queries per record (augmented views) for the signals (default 1: the record itself)."),
    population: Optional[int] = typer.Option(None, help="Population records: RMIA's z, Attack-P, local offsets (default 10000)."),
    keep_classes: Optional[str] = typer.Option(None, help="Keep only these classes, e.g. 0,1,2,3,4 (default: all)."),
    shadow_dataset: Optional[str] = typer.Option(None, help="Grey-box: train shadow models on this dataset (default: the audited one)."),
    nonmember_dataset: Optional[str] = typer.Option(None, help="Take non-members from this (out-of-domain) dataset (default: the audited one)."),
    label_column: Optional[str] = typer.Option(None, help="Label column of a CSV/Parquet dataset file (default label)."),
    data_dir: Optional[str] = typer.Option(None, help="Where datasets live (default: $MIAUDIT_DATA, ../shared/data, /usr/share/datasets)."),
    delta: Optional[float] = typer.Option(None, help="δ of the empirical ε lower bound (default 1e-5)."),
    coin_flip_members: bool = typer.Option(False, "--coin-flip-members", metavar="", help="Each audited record is a member by its own fair coin (makes the one-run ε lower bound valid)."),
    epsilon_method: Optional[str] = typer.Option(None, help="One-run ε audit: steinke-2023-one-run (default), mahloujifar-2025-fdp-one-run (tighter), mahloujifar-2025-gdp-one-run (an estimate)."),
    member_column: Optional[str] = typer.Option(None, help="The user's split: a column of 0/1 (or true/false, yes/no) in the dataset table, 1 = trained the target (default: miaudit draws the split)."),
    members_file: Optional[str] = typer.Option(None, help="The user's split: a file of the member records' ids (--id-column values, or row numbers from 0)."),
    id_column: Optional[str] = typer.Option(None, help="Record-id column of the dataset table (for --members-file; default: row numbers from 0)."),
    categorical: Optional[str] = typer.Option(None, help="Text columns of a table: onehot (default) or ordinal."),
    missing: Optional[str] = typer.Option(None, help="Rows with missing values: drop (default, counted in the report) or impute (median / most frequent)."),
    na_values: Optional[str] = typer.Option(None, help="Texts meaning a missing value, comma-separated (default: '', ?, NA, N/A, NaN, null, None)."),
    columns: Optional[str] = typer.Option(None, help="Column names of a header-less CSV, comma-separated."),
    no_header: bool = typer.Option(False, "--no-header", metavar="", help="The CSV has no header line (columns named col0, col1, ...)."),
    sep: Optional[str] = typer.Option(None, help="CSV separator: a character, tab or whitespace (default: comma, tab for .tsv; whitespace when the first line has no comma, as in UCI .data files)."),
    drop: Optional[str] = typer.Option(None, help="Table columns to leave out, comma-separated (e.g. outcome columns that leak the label)."),
    keep: Optional[str] = typer.Option(None, help="Table columns to encode as they are although the default screening leaves them out (ids, names, free text, over 100 categories) or reads them as dates."),
    max_features: Optional[int] = typer.Option(None, help="Cap on a table's encoded width (default 20000), checked before encoding."),
    trust_pickle: bool = typer.Option(False, "--trust-pickle", metavar="", help="Allow a .pkl / .joblib target (loading a pickle runs its code)."),
    target_output: Optional[str] = typer.Option(None, help="What a model file returns: auto (default), logits or probabilities."),
    target_input: Optional[str] = typer.Option(None, help="What a model file is fed: raw (default, the records as in your data) or scaled (as miaudit's models see them)."),
    reference_architecture: Optional[str] = typer.Option(None, help="Architecture of the reference models (mlp, cnn, forest, ...); needed for an ONNX target (default: the target's own)."),
    predictions: Optional[str] = typer.Option(None, help="Audit precomputed outputs (.npz / .parquet, see docs/predictions-format.md); no model is trained."),
    save_target: Optional[Path] = typer.Option(None, help="Export the target miaudit trained (.onnx for torch models, .skops for scikit-learn)."),
    save_predictions: Optional[Path] = typer.Option(None, help="Write the audit's signals as an .npz file that --predictions reads."),
    shadow_data: Optional[str] = typer.Option(None, help="Shadow records with --reference-data attacker: real (default), noisy, marginals or synthesized (from the target's confidences)."),
    shadow_noise: Optional[float] = typer.Option(None, help="--shadow-data noisy: fraction of features flipped / perturbed (default 0.1)."),
    synthesis_queries: Optional[int] = typer.Option(None, help="--shadow-data synthesized: cap on target queries (default 1000 per record)."),
    output_defense: Optional[str] = typer.Option(None, help="What the target releases: top-k:K, round:D, temperature:T or label (reference models queried the same way; default: its full output)."),
    no_cache: bool = typer.Option(False, "--no-cache", metavar="", help="Train reference models afresh; don't read or write the model cache."),
    cache_dir: Optional[str] = typer.Option(None, help="Reference-model cache (default: $MIAUDIT_CACHE or ~/.cache/miaudit)."),
    token_file: Optional[str] = typer.Option(None, help="Bearer token of a URL target, first line of this file (default: $MIAUDIT_TOKEN)."),
    query_budget: Optional[int] = typer.Option(None, help="Records a URL target may be sent in all; the audit stops, saying so, rather than pass it (default: no limit)."),
    backend: Optional[str] = typer.Option(None, help="Where reference models train: local (default) or ray (chunks as Ray tasks; pip install miaudit\\[ray])."),
    address: Optional[str] = typer.Option(None, help="--backend ray: the Ray cluster to join, e.g. ray://head:10001 or auto (default: a local Ray instance)."),
    signal_chunk: Optional[int] = typer.Option(None, help="Records per chunk of the signal matrix on disk (Zarr; pip install miaudit\\[zarr]): attacks stream over chunks (all but qmia, label-only and gradient-norm). 0 = in memory (default)."),
    signal_dtype: Optional[str] = typer.Option(None, help="--signal-chunk: float32 (default) or float16 logits on disk."),
    signal_store: Optional[str] = typer.Option(None, help="--signal-chunk: the store's directory, kept (default: a temporary one, removed after the audit)."),
    quiet: bool = typer.Option(False, "--quiet", metavar="", help="No progress bars."),
) -> None:
    """Train (or load) a target, attack it with every requested attack and write a report."""
    options = dict(locals())
    from miaudit.audit.run import audit as run_audit

    cfg = make_config(config, **config_settings(options))
    check_writable(out)
    for flag, path, suffixes in (("--save-target", save_target, (".onnx", ".skops")),
                                 ("--save-predictions", save_predictions, (".npz",))):
        if path is not None:
            check_output_file(flag, path, suffixes)
    if save_target is not None:
        check_exportable(cfg.target, save_target)
    if save_predictions is not None and cfg.signal_chunk:
        raise InputError("--save-predictions: the signals are on disk (--signal-chunk); keep them with --signal-store")
    if cfg.cache and cfg.reference_models:

        check_cache_dir(cfg.cache_dir or default_cache_dir())
    result = run_audit(cfg, progress=not quiet)
    paths = result.save(out)
    out_console.print(results_table(result))
    if result.headline is not None:
        from miaudit.report.findings import headline_lines

        for line in headline_lines(result):
            out_console.print(line, markup=False, highlight=False)
    for note in result.notes:
        out_console.print(f"note: {note}")
    out_console.print(f"total {result.timing['total_s']:.1f} s; report: {paths['report.html']}")
    if save_target is not None:
        out_console.print(f"target exported: {result.save_target(save_target)}")
    if save_predictions is not None:

        out_console.print(f"signals written: {write_predictions(result.predictions(), save_predictions)}")


@app.command("serve")
def serve(
    model_file: Path = typer.Argument(..., help="Model file: .onnx, .pt/.ts (TorchScript), .pt2 (torch.export), .skops, or a pickle with --trust-pickle."),
    port: int = typer.Option(8000, help="TCP port (0: any free one)."),
    token_file: Optional[Path] = typer.Option(None, help="Accepted bearer tokens, one a line (default: $MIAUDIT_SERVE_TOKEN, comma-separated)."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on; anything but loopback exposes the model to the network."),
    output: str = typer.Option("probs", help="What /v1/predict answers: probs, 'top-k K', 'rounded D' or label."),
    max_batch: Optional[int] = typer.Option(None, help="Most records in one request (default 1024; more: 413)."),
    max_body_bytes: Optional[int] = typer.Option(None, help="Largest request body in bytes (default 64 MiB; more: 413)."),
    query_budget: Optional[int] = typer.Option(None, help="Records each token may have answered in all (then 429)."),
    rate_limit: Optional[str] = typer.Option(None, help="Requests per token, e.g. 10/s or 600/min (more: 429 with Retry-After)."),
    dataset: Optional[str] = typer.Option(None, help="Take the record shape and class count from this dataset (name or path)."),
    features: Optional[str] = typer.Option(None, help="One record's shape, e.g. 64 or 1,28,28 (when the file does not declare it)."),
    classes: Optional[int] = typer.Option(None, help="Number of classes (when the file does not declare it)."),
    data_dir: Optional[str] = typer.Option(None, help="Where datasets live (for --dataset)."),
    trust_pickle: bool = typer.Option(False, "--trust-pickle", metavar="", help="Load a pickle / joblib file (runs its code) or skops types it does not trust."),
) -> None:
    """Serve a model file as a black-box prediction API: POST /v1/predict, GET /v1/health, /v1/openapi.json."""
    from miaudit.serve.command import serve_model_file

    serve_model_file(model_file, token_file=token_file, host=host, port=port, output=output, max_batch=max_batch,
                     max_body_bytes=max_body_bytes, query_budget=query_budget, rate_limit=rate_limit,
                     dataset=dataset, features=features, classes=classes, data_dir=data_dir,
                     trust_pickle=trust_pickle)


@app.command("invert")
def invert_command(
    dataset: str = typer.Option("mnist", help="Image dataset (see `miaudit datasets`)."),
    target: str = typer.Option("mlp", help="Target model: mlp, cnn or small-cnn (inversion needs gradients)."),
    epochs: str = typer.Option("1,10,100", help="Training budgets, e.g. 1,10,100: one target and one grid each."),
    members: int = typer.Option(5000, help="Records the target trains on."),
    hidden: str = typer.Option("256", help="MLP hidden widths, e.g. 256 or 512,256."),
    max_iter: int = typer.Option(5000, help="Gradient steps per class at most."),
    window: int = typer.Option(100, help="Stop a class when its cost is not below its last WINDOW costs."),
    cost_threshold: float = typer.Option(0.01, help="Stop a class when 1 - p(class) is at most this."),
    lr: float = typer.Option(0.1, help="Step size of the gradient descent on the pixels."),
    smoothing: float = typer.Option(0.0, help="Gaussian blur sigma (pixels) after each step; 0 = none."),
    objective: str = typer.Option("probability", help="probability (1 - p, Fredrikson et al.) or log-probability (-log p)."),
    seed: int = typer.Option(0, help="Seed of the training records and the targets."),
    data_dir: Optional[str] = typer.Option(None, help="Where datasets live."),
    out: Path = typer.Option(Path("runs/invert"), help="Output directory for the PNGs and inversion.json."),
    quiet: bool = typer.Option(False, "--quiet", metavar="", help="No progress bars."),
) -> None:
    """Model inversion (MIFace): what each class looks like to a target trained for each budget."""
    from miaudit.inversion.experiment import parse_epochs, run_inversion, write_figures

    budgets = parse_epochs(epochs)
    widths = make_config(hidden=hidden).hidden
    check_writable(out)
    with ProgressBoard(not quiet) as board:
        results = run_inversion(dataset, target, budgets, members=members, hidden=widths, seed=seed,
                                data_dir=data_dir, board=board, max_iter=max_iter, window=window,
                                cost_threshold=cost_threshold, lr=lr, smoothing=smoothing, objective=objective)
    paths = write_figures(results, out, f"MIFace inversion of a {dataset} {target}")
    for r in results:
        probs = r.inversion.probabilities
        out_console.print(f"{r.epochs} epochs: test acc {r.test_accuracy:.3f}, reached p mean {probs.mean():.3f} "
                          f"(min {probs.min():.3f}), {r.seconds / len(probs):.2f} s per class")
    out_console.print(f"figures: {paths['inversion.png']}")


@app.command()
def sweep(
    experiment: str = typer.Argument(..., help="shadow-count, train-size, num-classes, overfitting, attack-model, model-type, epochs, defenses, or your own name with --config."),
    out: Path = typer.Option(Path("runs/sweep"), help="Output directory: sweep.json, sweep.csv, sweep.md, plots, sweep.html."),
    dataset: Optional[str] = typer.Option(None, help="Dataset of every point (default fashion-mnist)."),
    seeds: Optional[int] = typer.Option(None, help="Seeds per point (default 3)."),
    config: Optional[Path] = typer.Option(None, help="sweep.toml: your own grid, seeds, metric and claim (or changes to a built-in)."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="KEY=VALUE audit setting for every point, e.g. --set members=500 (repeatable)."),
    quiet: bool = typer.Option(False, "--quiet", metavar="", help="No progress bar."),
) -> None:
    """Run a classic membership-inference experiment (or your own sweep) over seeds; resumes in --out."""

    spec = make_sweep(experiment, dataset, seeds, config)
    overrides = parse_overrides(set_)
    check_writable(out)
    doc = run_sweep(spec, out, progress=not quiet, overrides=overrides)

    out_console.print(markdown(doc), markup=False, highlight=False)
    out_console.print(f"sweep: {out / 'sweep.html'}")


@app.command("attacks")
def list_attacks() -> None:
    """List the attacks miaudit has, with their threat model and needs, then each one's parameters."""

    table = Table("attack", "threat model", "needs", "what it does")
    for spec in ATTACKS.values():
        needs = [n for n, flag in (("reference models", spec.needs_references),
                                   ("IN reference models", spec.needs_in_models),
                                   ("population data", spec.needs_population),
                                   ("the records themselves", spec.needs_records)) if flag]
        table.add_row(spec.name, spec.threat_model, ", ".join(needs) or "-", spec.description)
    out_console.print(table)
    params = Table("attack", "parameter", "default", "bounds", "what it sets",
                   title="Parameters (--attack-param NAME.PARAM=VALUE, or attack_params in a --config file)")
    for spec in ATTACKS.values():
        for name, default, bound, description in describe(spec.params):
            params.add_row(spec.name, name, default, bound or "-", description)
    out_console.print(params)


@app.command("datasets")
def list_datasets_command(data_dir: Optional[str] = typer.Option(None, help="Dataset directory to search first.")) -> None:
    """List the datasets miaudit knows and whether each is available on this machine."""

    table = Table("dataset", "records", "classes", "available", "where / why not")
    for info in list_datasets(data_dir):
        table.add_row(info.name, str(info.records or "?"), str(info.classes or "?"),
                      "yes" if info.available else "no", str(info.location))
    out_console.print(table)


def check_writable(out: Path) -> None:
    """Fail before any work when ``out`` cannot become a writable directory."""
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise InputError(f"--out: {out} is not writable ({probe} is a file)")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(f"--out: {out} is not writable")


def check_output_file(flag: str, path: Path, suffixes: tuple[str, ...]) -> None:
    """Fail before any work when ``path`` has none of ``suffixes`` or its folder is not writable."""
    if path.suffix.lower() not in suffixes:
        raise InputError(f"{flag}: {path.name}: name the file *{' or *'.join(suffixes)}")
    check_writable(path.parent if str(path.parent) else Path("."))


def check_exportable(target: str, path: Path) -> None:
    """Fail before any work when --save-target cannot export ``target`` to ``path``."""
    family = find_family(target) if target_kind(target) == "model" else None
    if family is None or family.export_suffix is None:
        raise InputError(f"--save-target: the target {target} is not one miaudit trains; nothing to export")
    want = family.export_suffix
    if path.suffix.lower() != want:
        raise InputError(f"--save-target: a {target} target exports to {want}, got {path.name}")


def results_table(result) -> Table:
    """A rich table of the attacks, best AUC first, AUC and TPRs with their intervals (legend below)."""
    from rich.markup import escape
    from rich.text import Text

    from miaudit.report.results import (
        EPSILON_LEGEND,
        format_auc,
        format_chance,
        format_tpr,
        table_legend,
        within_chance,
    )

    def chance(m, name: str) -> Text:  # greyed when within chance
        return Text(format_chance(m, name), style="dim" if within_chance(m, name) else "")

    t = result.target
    metrics = [a.metrics for a in result.attacks]
    table = Table(title=f"{result.config['dataset']} / {t.model}: train acc {t.train_accuracy:.3f}, "
                        f"test acc {t.test_accuracy:.3f}, {t.members} members, {t.non_members} non-members",
                  caption=escape("\n".join([*table_legend(metrics), EPSILON_LEGEND] if metrics else [])) or None,
                  caption_justify="left",
                  box=box.SIMPLE_HEAD, show_edge=False, collapse_padding=True, pad_edge=False)
    bound = all(a.metrics.epsilon_valid for a in result.attacks)
    for col in ("attack", "AUC", "TPR@0.1%", "TPR@1%", "acc", "prec", "recall", "adv", "ε ≥" if bound else "ε est", "s"):
        table.add_column(col, justify="left" if col == "attack" else "right", no_wrap=True)
    for a in sorted(result.attacks, key=lambda a: -a.metrics.auc):
        m = a.metrics
        table.add_row(a.name, format_auc(m), Text(format_tpr(m, 0.001, True)), Text(format_tpr(m, 0.01, True)),
                      chance(m, "accuracy"), f"{m.precision:.3f}", f"{m.recall:.3f}", chance(m, "advantage"),
                      f"{m.epsilon_lower_bound:.2f}", f"{a.seconds:.2f}")
    return table


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Show a warning as one line on stderr, "warning: <message>" (no source file or line)."""
    sys.stderr.write(f"warning: {_one_line(message)}\n")


def _one_line(message: object) -> str:
    return " ".join(str(message).split())


def main() -> None:
    """Entry point: bad input -> one line on stderr and exit 2; other failures -> one line and exit 1.

    Usage errors (unknown flag, bad option type) are typer's own and also exit 2. Warnings show as
    one line each.
    """
    shown = warnings.showwarning
    warnings.showwarning = _one_line_warning
    try:
        _run_app()
    finally:
        warnings.showwarning = shown


def _run_app() -> None:
    try:
        code = app(standalone_mode=False)
    except InputError as e:
        err_console.print(f"error: {_one_line(e)}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(1)
    except typer.TyperException as e:  # usage errors: unknown flag, wrong option type, missing value
        message = e.format_message() if hasattr(e, "format_message") else str(e)
        err_console.print(f"error: {_one_line(message)}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(getattr(e, "exit_code", 2))
    except KeyboardInterrupt:
        err_console.print("interrupted (trained reference models are kept in the cache)")
        sys.exit(130)
    except Exception as e:
        if os.environ.get("MIAUDIT_DEBUG"):
            raise
        err_console.print(f"error: {type(e).__name__}: {_one_line(e)} (set MIAUDIT_DEBUG=1 for the traceback)",
                          markup=False, highlight=False, soft_wrap=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()

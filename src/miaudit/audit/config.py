"""AuditConfig: every setting of one audit, validated up front (before any training)."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import tomllib
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from miaudit.attacks.registry import ATTACKS
from miaudit.attacks.streamed import STREAMED, streamable_names, streamed_parameters
from miaudit.data.scaling import InputScaling
from miaudit.errors import InputError
from miaudit.extras import require
from miaudit.models.recipe import MAX_SEED, TrainingRecipe
from miaudit.signals.defenses import parse_output_defense

# LiRA's and RMIA's gains level off well before this many reference models (Carlini et al. 2022 use
# 256, Zarifzadeh et al. 2024 fewer); beyond it an audit is days of training and its signals
# K x (N + Z) x Q x C float32 outgrow memory (checked against the data in miaudit.audit.limits).
MAX_REFERENCE_MODELS = 1024
_WIDTHS = re.compile(r"\s*\d+\s*([,-]\s*\d+\s*)*")
Width = Annotated[int, Field(strict=True, gt=0)]
ClassIndex = Annotated[int, Field(strict=True, ge=0)]


class AuditConfig(BaseModel):
    """Settings of one audit. Sizes are record counts; None means "choose from the dataset".

    members: target training records (default: a quarter of the dataset, at most 2500);
    non_members: audited records the target never saw (default: as many as members);
    reference_models: K reference / shadow models; reference_data: "pool" trains them on balanced
    halves of the audited records (LiRA / RMIA threat model), "attacker" on disjoint attacker data
    (classic Shokri); queries: outputs per record (1 = the record itself; more adds flips / shifts
    for images and small noise for tabular data); population: attacker records no model trained on (RMIA's z,
    Attack-P, and the neighbours that measure each model's local offsets; 10,000 by default: on
    Fashion-MNIST, 5,000 -> 10,000 -> 20,000 moved 64-model RMIA's AUC 0.734 -> 0.741 -> 0.745, at
    a cost linear in the number);
    chunk_size: torch reference models trained (and cached) together, so an interrupted audit
    retrains at most one chunk; input_scaling: "standard" standardizes every model's inputs with
    the audited dataset's mean / std (per image channel or tabular feature), "auto" does too but
    leaves 0/1 indicator features as they are, "none" feeds features as loaded (images in [0, 1]);
    coin_flip_members: each of the members + non_members audited records is a member by its own fair
    coin (what makes the one-run epsilon lower bound valid) instead of exactly ``members`` of them;
    epsilon_method: the one-run epsilon audit of :mod:`miaudit.metrics.dp_audit` (the GDP form is an estimate);
    shadow_data: what attacker-mode shadow models train on (Shokri et al. 2017): the attacker's real
    records, "noisy" ones (shadow_noise of the features flipped / perturbed), "marginals" (features
    drawn independently per class), or records "synthesized" by climbing the trained target's
    confidence (at most synthesis_queries target queries; default 1000 per record), see
    :mod:`miaudit.data.shadow_data` and :mod:`miaudit.data.synthesis`;
    output_defense: what the target releases per query ("top-k:3", "round:2", "temperature:2", "label";
    :mod:`miaudit.signals.defenses`), applied to the reference models' outputs too.

    The user's own data and model (issue 10): a CSV / Parquet ``dataset`` is encoded as ``categorical``
    ("onehot" | "ordinal"), ``missing`` ("drop" rows | "impute"), ``na_values`` (texts meaning
    missing), ``columns`` / ``no_header`` for header-less files; ``member_column`` (0/1 per row) or
    ``members_file`` (record ids, from ``id_column`` or row numbers) is the user's split: members and
    non-members are then the audited records. ``target`` may be a model file (.onnx, .pt, .pt2,
    .skops; pickles with ``trust_pickle``); ``target_output`` says what it returns; ``target_input``
    "raw" feeds it the records as in the user's data, "scaled" as miaudit's models see them.
    ``reference_architecture`` names the reference models' architecture (needed for ONNX targets;
    default: a clone of a scikit-learn target, a re-initialised TorchScript target).
    ``predictions``: a file of precomputed outputs (signals in, audit out; no model is trained).
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    dataset: str = "digits"
    target: str = "mlp"
    hidden: tuple[Width, ...] = (256,)
    members: int | None = Field(None, ge=1)
    non_members: int | None = Field(None, ge=1)
    reference_models: int = Field(8, ge=0)
    reference_data: Literal["pool", "attacker"] = "pool"
    attacks: list[str] = ["auto"]
    attack_params: dict[str, dict[str, Any]] = {}  # attack name -> its parameters (`miaudit attacks` lists them)
    seed: int = Field(0, ge=0, le=MAX_SEED, strict=True)  # strict: a bool (YAML `seed: true`) is not a seed
    recipe: TrainingRecipe = TrainingRecipe()
    precision: Literal["auto", "float32", "bfloat16"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    input_scaling: InputScaling = "auto"
    queries: int = Field(1, ge=1, le=32)
    population: int = Field(10_000, ge=0)
    keep_classes: list[ClassIndex] | None = None
    shadow_dataset: str | None = None
    nonmember_dataset: str | None = None
    label_column: str = "label"
    data_dir: str | None = None
    delta: float = Field(1e-5, gt=0, lt=1)
    confidence: float = Field(0.95, gt=0, lt=1)
    cache: bool = True
    cache_dir: str | None = None
    chunk_size: int = Field(16, ge=1)
    n_jobs: int = -1
    backend: Literal["local", "ray"] = "local"  # where reference-model chunks train (ray: pip install miaudit[ray])
    address: str | None = None  # a Ray cluster to join with backend "ray" (default: a local Ray instance)
    coin_flip_members: bool = False
    categorical: Literal["onehot", "ordinal"] = "onehot"
    missing: Literal["drop", "impute"] = "drop"
    na_values: list[str] | None = None
    columns: list[str] | None = None
    no_header: bool = False
    sep: str | None = None  # CSV separator: a character, "tab" or "whitespace" (default: guessed, see data/table_io.py)
    drop: list[str] | None = None  # table columns left out
    keep: list[str] | None = None  # table columns encoded although the default screening leaves them out
    max_features: int = Field(20_000, ge=1)  # cap on a table's encoded width (data/column_screen.MAX_FEATURES)
    member_column: str | None = None
    members_file: str | None = None
    id_column: str | None = None
    trust_pickle: bool = False
    target_output: Literal["auto", "logits", "probabilities"] = "auto"
    target_input: Literal["raw", "scaled"] = "raw"
    reference_architecture: str | None = None
    predictions: str | None = None
    epsilon_method: Literal["steinke-2023-one-run", "mahloujifar-2025-fdp-one-run",
                            "mahloujifar-2025-gdp-one-run"] = "steinke-2023-one-run"
    token_file: str | None = None  # bearer token of a URL target (else $MIAUDIT_TOKEN)
    query_budget: int | None = Field(None, ge=1)  # records a URL target may be sent in all
    shadow_data: Literal["real", "noisy", "marginals", "synthesized"] = "real"
    shadow_noise: float = Field(0.1, gt=0, le=1)
    synthesis_queries: int | None = Field(None, ge=1)
    output_defense: str | None = None
    signal_chunk: int | None = Field(None, ge=0)  # records per chunk of the on-disk signal matrix; 0/None: in memory
    signal_dtype: Literal["float32", "float16"] = "float32"  # logits in the signal store
    signal_store: str | None = None  # the store's directory (default: a temporary one, removed after the audit)

    @field_validator("output_defense", mode="before")
    @classmethod
    def _defense(cls, v: Any) -> Any:

        if v is None:
            return None
        try:
            defense = parse_output_defense(v)
        except InputError as e:
            raise ValueError(str(e).removeprefix("output_defense: ")) from None
        return None if defense is None else str(defense)

    @field_validator("attacks", mode="before")
    @classmethod
    def _split_attacks(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [a.strip() for a in v.split(",")]
        if not isinstance(v, (list, tuple)):
            return v
        names = [a for a in v if a]
        if not names:
            raise ValueError("give attack names separated by commas, 'auto' or 'all' (see `miaudit attacks`)")
        return names

    @field_validator("attack_params")
    @classmethod
    def _attack_params(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        out = {}
        for name, values in v.items():
            if name not in ATTACKS:
                raise ValueError(f"unknown attack {name!r} (`miaudit attacks` lists them)")
            try:
                out[name] = ATTACKS[name].settings(values).model_dump(include=set(values))
            except InputError as e:
                raise ValueError(str(e).removeprefix("attack_params: ")) from None
        return out

    @field_validator("na_values", "columns", "drop", "keep", mode="before")
    @classmethod
    def _split_names(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [a.strip() for a in v.split(",")]
        return v

    @field_validator("hidden", mode="before")
    @classmethod
    def _split_hidden(cls, v: Any) -> Any:
        if isinstance(v, str):
            if not _WIDTHS.fullmatch(v):
                raise ValueError(f"layer widths must be positive integers separated by commas, got {v!r}")
            v = [int(h) for h in re.split("[,-]", v)]
        return v

    @field_validator("keep_classes", mode="before")
    @classmethod
    def _split_classes(cls, v: Any) -> Any:
        if isinstance(v, str):
            parts = [c.strip() for c in v.split(",")]
            if not all(c.isdigit() for c in parts):
                raise ValueError(f"class numbers (0, 1, ...) separated by commas, got {v!r}")
            v = [int(c) for c in parts]
        return v

    @field_validator("reference_models")
    @classmethod
    def _at_most_max_references(cls, v: int) -> int:
        if v > MAX_REFERENCE_MODELS:
            raise ValueError(f"at most {MAX_REFERENCE_MODELS} reference models, got {v} (LiRA and RMIA gain "
                             f"little beyond a few hundred; training and signals grow linearly with K)")
        return v

    @field_validator("n_jobs")
    @classmethod
    def _jobs(cls, v: int) -> int:
        if v == 0 or v < -1:
            raise ValueError(f"use -1 (every core) or a positive number of jobs, got {v}")
        return v

    @model_validator(mode="after")
    def _dp_needs_torch(self) -> AuditConfig:
        if self.recipe.dp:
            if self.target not in ("mlp", "cnn", "small-cnn"):
                raise ValueError(f"DP-SGD (--dp-epsilon / --dp-noise-multiplier) trains torch models "
                                 f"(mlp, cnn, small-cnn), not --target {self.target}")

            require("opacus", "dp", "dp")
        return self

    @model_validator(mode="after")
    def _ray_backend(self) -> AuditConfig:
        if self.address is not None and self.backend != "ray":
            raise ValueError("--address joins a Ray cluster: use it with --backend ray")
        if self.backend == "ray":

            require("ray", "ray", "backend")
        return self

    @model_validator(mode="after")
    def _streamed_signals(self) -> AuditConfig:
        if not self.signal_chunk:
            if self.signal_store is not None:
                raise ValueError("--signal-store: needs --signal-chunk (signals on disk in chunks of that size)")
            return self

        for bad, why in ((self.queries != 1, f"need --queries 1, got {self.queries}"),
                         (self.reference_data != "pool" or self.shadow_dataset is not None,
                          "need --reference-data pool (reference models on the audited records)"),
                         (self.predictions is not None, "cannot be used with --predictions (signals given)")):
            if bad:
                raise ValueError(f"--signal-chunk: streamed signals {why}")
        for name, values in self.attack_params.items():  # the streamed form must take every parameter given
            if name in STREAMED and (missing := sorted(set(values) - streamed_parameters(name))):
                raise ValueError(f"--signal-chunk: {name}'s streamed form takes no {', '.join(missing)}; drop "
                                 f"--attack-param {name}.{missing[0]} or use --signal-chunk 0")
        require("zarr", "zarr", "--signal-chunk")
        streamable_names(self.attacks)  # a named attack that cannot stream: InputError; "all" / "auto" stay
        return self

    def public(self) -> dict[str, Any]:
        """The results.json "config" block: contract keys first, then everything else."""
        d = self.model_dump(mode="json")
        return {"dataset": d.pop("dataset"), "target": d.pop("target"), "members": d.pop("members"),
                "reference_models": d.pop("reference_models"), "seed": d.pop("seed"), **d}


def validation_message(err: ValidationError, prefix: str = "") -> str:
    """One line naming the first bad field: 'members: Input should be greater than or equal to 1'."""
    e = err.errors()[0]
    field = ".".join(str(p) for p in e["loc"] if not isinstance(p, int)) or "config"
    if e["type"] == "extra_forbidden":
        return f"{prefix}unknown setting {field!r}"
    if e["type"] == "value_error":  # our own validators: the message already shows the value
        message = str(e["ctx"]["error"])
        if not e["loc"] and message.startswith("--"):  # a check across fields that names its flag
            return f"{prefix}{message}"
        return f"{prefix}{field}: {message}"
    value = e.get("input")
    shown = f" (got {value!r})" if not isinstance(value, (dict, list, tuple)) else ""
    return f"{prefix}{field}: {e['msg']}{shown}"


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Settings from a .json, .toml or .yaml file (keys as in AuditConfig; CLI flags override)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"--config: {p} " + ("is not a file" if p.exists() else "does not exist"))
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"--config: {p.name} is not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise InputError(f"--config: cannot read {p.name} ({e.strerror or e})") from None
    try:
        if p.suffix == ".json":
            data = json.loads(text)
        elif p.suffix == ".toml":
            data = tomllib.loads(text)
        elif p.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            raise InputError(f"--config: {p.name}: use a .json, .toml or .yaml file")
    except (ValueError, tomllib.TOMLDecodeError) as e:  # json / toml decode errors
        raise InputError(f"--config: {p.name} is not valid {p.suffix[1:]}: {str(e).splitlines()[0]}") from None
    except Exception as e:  # yaml errors
        if type(e).__module__.startswith("yaml"):
            raise InputError(f"--config: {p.name} is not valid yaml: {str(e).splitlines()[0]}") from None
        raise
    if not isinstance(data, dict):
        raise InputError(f"--config: {p.name} must hold a mapping of settings")
    odd = [k for k in data if not isinstance(k, str)]
    if odd:
        raise InputError(f"--config {p.name}: unknown setting {odd[0]!r}")
    return data


def make_config(file: str | Path | None = None, base: AuditConfig | None = None, **overrides: Any) -> AuditConfig:
    """Config from an optional file (or an existing config) plus keyword overrides.

    Overrides may name AuditConfig fields or TrainingRecipe fields (epochs=5); None values are ignored.
    ``attack_params`` may be a list of ``--attack-param`` texts (NAME.PARAM=VALUE), merged over the file's.
    """
    data: dict[str, Any] = read_config_file(file) if file else {}
    where = f"--config {Path(file).name}: " if file else ""
    _nest_recipe_keys(data, where)
    file_data = set(data)
    file_recipe = set(data["recipe"]) if isinstance(data.get("recipe"), dict) else set()
    given = {k for k, v in overrides.items() if v is not None}
    if base is not None:
        data = {**base.model_dump(), **data}
    recipe = data.pop("recipe", None) or {}
    if isinstance(recipe, BaseModel):  # a TrainingRecipe
        recipe = recipe.model_dump()
    if not isinstance(recipe, dict) or not all(isinstance(k, str) for k in recipe):
        raise InputError(f"{where}recipe: must be a table of training settings (epochs, lr, ...), "
                         f"got {type(recipe).__name__}")
    recipe = dict(recipe)
    for key in list(overrides):
        if key in TrainingRecipe.model_fields and key not in AuditConfig.model_fields:
            value = overrides.pop(key)
            if value is not None:
                recipe[key] = value
    if isinstance(overrides.get("attack_params"), (list, tuple)):  # --attack-param NAME.PARAM=VALUE flags
        overrides["attack_params"] = parse_attack_params(list(overrides["attack_params"]))
    if overrides.get("attack_params") and isinstance(data.get("attack_params"), dict):  # flags over the file's
        merged = dict(data["attack_params"])
        for name, values in overrides["attack_params"].items():
            before = merged.get(name)
            merged[name] = {**before, **values} if isinstance(before, dict) else values
        overrides["attack_params"] = merged
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        training = TrainingRecipe(**recipe)
    except ValidationError as e:
        raise InputError(validation_message(e, where if _first_field(e) in file_recipe - given else "")) from None
    try:
        return AuditConfig(**data, recipe=training)
    except ValidationError as e:
        raise InputError(validation_message(e, where if _first_field(e) in file_data - given else "")) from None


def parse_attack_params(items: list[str] | None) -> dict[str, dict[str, Any]] | None:
    """``--attack-param NAME.PARAM=VALUE`` flags as {attack: {param: value}} (None: none given). VALUE is read
    as JSON where it parses (3, 0.5, true, null, [0.1, 0.2]), else kept as text."""
    if not items:
        return None
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        name, dot, param = key.strip().partition(".")
        if not (sep and dot and name and param and text.strip()):
            raise InputError(f"--attack-param: use NAME.PARAM=VALUE (e.g. rmia.gamma=2.5), got {item!r}")
        try:
            value = json.loads(text)
        except ValueError:
            value = text.strip()
        out.setdefault(name, {})[param.strip()] = value
    return out


def _nest_recipe_keys(data: dict[str, Any], where: str) -> None:
    """Move a settings file's top-level training keys ({"epochs": 2}) into its recipe table, in place,
    so a file takes every option by its flag's name; a key given both ways is an InputError."""
    flat = [k for k in data if k in TrainingRecipe.model_fields and k not in AuditConfig.model_fields]
    if not flat:
        return
    recipe = data.get("recipe")
    if recipe is None:
        recipe = data["recipe"] = {}
    if not isinstance(recipe, dict):
        return  # make_config names the bad recipe table
    for key in flat:
        if key in recipe:
            raise InputError(f"{where}{key}: given twice, at the top level and in the recipe table")
        recipe[key] = data.pop(key)


def _first_field(err: ValidationError) -> str:
    loc = err.errors()[0]["loc"]
    return str(loc[0]) if loc else ""

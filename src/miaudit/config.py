"""AuditConfig: every setting of one audit, validated up front (before any training)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import tomllib
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from miaudit.data.scaling import InputScaling
from miaudit.errors import InputError
from miaudit.models.recipe import TrainingRecipe


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
    epsilon_method: the one-run epsilon audit of :mod:`miaudit.dp_audit` (the GDP form is an estimate).
    """

    model_config = ConfigDict(extra="forbid")

    dataset: str = "digits"
    target: str = "mlp"
    hidden: tuple[int, ...] = (256,)
    members: int | None = Field(None, ge=1)
    non_members: int | None = Field(None, ge=1)
    reference_models: int = Field(8, ge=0)
    reference_data: Literal["pool", "attacker"] = "pool"
    attacks: list[str] = ["all"]
    seed: int = 0
    recipe: TrainingRecipe = TrainingRecipe()
    precision: Literal["auto", "float32", "bfloat16"] = "auto"
    input_scaling: InputScaling = "auto"
    queries: int = Field(1, ge=1, le=32)
    population: int = Field(10_000, ge=0)
    keep_classes: list[int] | None = None
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
    coin_flip_members: bool = False
    epsilon_method: Literal["steinke-2023-one-run", "mahloujifar-2025-fdp-one-run",
                            "mahloujifar-2025-gdp-one-run"] = "steinke-2023-one-run"

    @field_validator("attacks", mode="before")
    @classmethod
    def _split_attacks(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [a.strip() for a in v.split(",")]
        return [a for a in v if a]

    @field_validator("hidden", mode="before")
    @classmethod
    def _split_hidden(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [int(h) for h in v.replace("-", ",").split(",") if h.strip()]
        return v

    def public(self) -> dict[str, Any]:
        """The results.json "config" block: contract keys first, then everything else."""
        d = self.model_dump(mode="json")
        return {"dataset": d.pop("dataset"), "target": d.pop("target"), "members": d.pop("members"),
                "reference_models": d.pop("reference_models"), "seed": d.pop("seed"), **d}


def validation_message(err: ValidationError, prefix: str = "") -> str:
    """One line naming the first bad field: 'members: Input should be greater than or equal to 1'."""
    e = err.errors()[0]
    field = ".".join(str(p) for p in e["loc"]) or "config"
    if e["type"] == "extra_forbidden":
        return f"{prefix}unknown setting {field!r}"
    value = e.get("input")
    shown = f" (got {value!r})" if not isinstance(value, (dict, list)) else ""
    return f"{prefix}{field}: {e['msg']}{shown}"


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Settings from a .json, .toml or .yaml file (keys as in AuditConfig; CLI flags override)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"--config: {p} does not exist")
    text = p.read_text()
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
    return data


def make_config(file: str | Path | None = None, base: AuditConfig | None = None, **overrides: Any) -> AuditConfig:
    """Config from an optional file (or an existing config) plus keyword overrides.

    Overrides may name AuditConfig fields or TrainingRecipe fields (epochs=5); None values are ignored.
    """
    data: dict[str, Any] = read_config_file(file) if file else {}
    if base is not None:
        data = {**base.model_dump(), **data}
    where = f"--config {Path(file).name}: " if file else ""
    recipe = dict(data.pop("recipe", {}) or {})
    for key in list(overrides):
        if key in TrainingRecipe.model_fields and key not in AuditConfig.model_fields:
            value = overrides.pop(key)
            if value is not None:
                recipe[key] = value
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return AuditConfig(**data, recipe=TrainingRecipe(**recipe))
    except ValidationError as e:
        raise InputError(validation_message(e, where)) from None

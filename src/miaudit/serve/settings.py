"""What ``miaudit serve`` is told: the output option, limits, address, and the accepted tokens."""
from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from miaudit.audit.config import validation_message
from miaudit.errors import InputError
from miaudit.targets.http_target import read_token_file

TOKENS_ENV = "MIAUDIT_SERVE_TOKEN"
MIN_TOKEN_CHARS = 16
_OUTPUT = re.compile(r"\s*(probs|probabilities|label|labels|top-k|rounded)(?:[\s=:]+(\d+))?\s*", re.IGNORECASE)
_RATE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(?:/\s*(s|sec|second|m|min|minute))?\s*", re.IGNORECASE)


class OutputOption(BaseModel):
    """What /v1/predict returns: "probs" (the probability vector), "top-k" (the value largest
    probabilities, the others 0), "rounded" (probabilities rounded to value decimals) or "label"."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["probs", "top-k", "rounded", "label"] = "probs"
    value: int | None = None

    @property
    def answers(self) -> str:
        """The response field: "labels" or "probabilities"."""
        return "labels" if self.kind == "label" else "probabilities"

    def __str__(self) -> str:
        return self.kind if self.value is None else f"{self.kind} {self.value}"


def parse_output(text: str, n_classes: int | None = None) -> OutputOption:
    """--output "probs" | "top-k K" | "rounded D" | "label" (K in 1..classes, D in 0..15)."""
    match = _OUTPUT.fullmatch(text or "")
    if not match:
        raise InputError(f"--output: {text!r} is not probs, top-k K, rounded D or label")
    word, number = match.group(1).lower(), match.group(2)
    kind = {"probabilities": "probs", "labels": "label"}.get(word, word)
    if kind in ("probs", "label"):
        if number is not None:
            raise InputError(f"--output: {kind} takes no number, got {text!r}")
        return OutputOption(kind=kind)
    if number is None:
        raise InputError(f"--output: {kind} needs a number, e.g. '{kind} {3 if kind == 'top-k' else 2}'")
    value = int(number)
    if kind == "top-k" and not 1 <= value <= (n_classes or value):
        raise InputError(f"--output: top-k {value}: k must lie in 1..{n_classes or 'classes'}")
    if kind == "rounded" and value > 15:
        raise InputError(f"--output: rounded {value}: at most 15 decimals")
    return OutputOption(kind=kind, value=value)


def parse_rate(text: str | None) -> float | None:
    """--rate-limit "R/s" or "R/min" (requests per token) -> requests per second, None when not given."""
    if text is None:
        return None
    match = _RATE.fullmatch(text)
    if not match or float(match.group(1)) <= 0:
        raise InputError(f"--rate-limit: {text!r} is not a positive rate such as 10/s or 600/min")
    per_minute = (match.group(2) or "s").lower().startswith("m")
    return float(match.group(1)) / (60.0 if per_minute else 1.0)


class ServeSettings(BaseModel):
    """Limits and address of one server. Sizes in records and bytes; rate_limit in requests per
    second per token (None: none); query_budget in records per token (None: none)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    output: OutputOption = OutputOption()
    max_batch: int = Field(1024, ge=1)
    max_body_bytes: int = Field(64 * 2**20, ge=1024)
    query_budget: int | None = Field(None, ge=1)
    rate_limit: float | None = Field(None, gt=0)


def make_settings(**values) -> ServeSettings:
    """ServeSettings from flag values (None: the default), as a one-line InputError when one is bad."""
    try:
        return ServeSettings(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as err:
        raise InputError("--" + validation_message(err).replace("_", "-")) from None


def token_id(token: str) -> str:
    """A token's name in logs: the first 8 hex digits of its SHA-256 (the token itself is never logged)."""
    return hashlib.sha256(token.encode()).hexdigest()[:8]


def read_tokens(token_file: str | Path | None, environ: Mapping[str, str] | None = None) -> list[str]:
    """The accepted bearer tokens: token_file's lines (blank and # lines skipped), else
    $MIAUDIT_SERVE_TOKEN split on commas and whitespace. Each at least 16 characters, no spaces."""
    environ = os.environ if environ is None else environ
    if token_file is not None:
        tokens, field = read_token_file(token_file), "--token-file"
    else:
        tokens, field = [t for t in re.split(r"[,\s]+", environ.get(TOKENS_ENV, "")) if t], TOKENS_ENV
        if not tokens:
            raise InputError(f"--token-file: no tokens: give a file of tokens (one a line) or set {TOKENS_ENV}")
    for i, token in enumerate(tokens, start=1):
        if len(token) < MIN_TOKEN_CHARS or any(c.isspace() for c in token):
            raise InputError(f"{field}: token {i} is shorter than {MIN_TOKEN_CHARS} characters or holds spaces; "
                             "make one with: python -c 'import secrets; print(secrets.token_urlsafe())'")
    return list(dict.fromkeys(tokens))

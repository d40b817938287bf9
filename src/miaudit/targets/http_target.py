"""A model behind a prediction API (``miaudit serve``'s protocol) as a Target, queried with httpx.

``POST {base}/predict`` {"records": [[d floats], ...]} answers {"probabilities": [[C floats], ...]}
or {"labels": [ints]}; ``GET {base}/model`` describes the model (record length, classes, output,
largest batch). Records are sent flattened (C order) in batches; 5xx answers, 429 with Retry-After and
connection errors are retried with exponential backoff; a 413 halves the batch. Probabilities become log-probabilities
(``contract.as_logits``, floored at 1e-12), as for file targets; a label-only endpoint gives a target
whose ``logits`` refuses and whose ``predict`` returns labels.

The query budget counts records the API answered; a request that would pass it is refused before
anything is sent (``QueryBudgetExhausted``), as is a 429 that reports the server's own budget spent.
"""
from __future__ import annotations

import os
import time
from collections.abc import Sequence
from math import prod
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from miaudit.errors import InputError
from miaudit.extras import require
from miaudit.models.contract import as_logits, one_line
from miaudit.models.wrappers import TargetOutputs

TOKEN_ENV = "MIAUDIT_TOKEN"
BUDGET_HEADER = "X-Query-Budget-Remaining"
URL_SCHEMES = ("http://", "https://")


class HttpTargetError(InputError):
    """A URL target failed: one line naming the URL (an InputError, so the CLI prints just that)."""


class QueryBudgetExhausted(HttpTargetError):
    """The query budget (ours, --query-budget, or the server's) cannot cover the next request.

    answered: records the API answered so far; budget: the budget in records (None: the server's).
    """

    def __init__(self, message: str, answered: int, budget: int | None) -> None:
        super().__init__(message)
        self.answered, self.budget = int(answered), budget


class TargetUnreachable(HttpTargetError):
    """The API did not answer (connection refused or dropped, timeouts, 5xx) after every retry."""


class PayloadTooLarge(HttpTargetError):
    """413: the API refuses a request this big (the batch is halved and tried again)."""


class LabelOnlyTarget(HttpTargetError):
    """Scores were asked of an endpoint that answers labels only."""


def is_url(target: str | Path) -> bool:
    """True for an http:// or https:// target."""
    return str(target).lower().startswith(URL_SCHEMES)


def api_base(url: str) -> str:
    """The API's base URL: ``url`` without a trailing slash or ``/predict``; ``/v1`` when it has no path."""
    base = url.rstrip("/")
    if base.endswith("/predict"):
        base = base[: -len("/predict")]
    if not urlsplit(base).path:
        base += "/v1"
    return base


def read_token_file(path: str | Path, field: str = "--token-file") -> list[str]:
    """The tokens in a file: one a line, blank lines and lines starting with # ignored."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{field}: {path} " + ("is not a file" if path.exists() else "does not exist"))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{field}: cannot read {path.name} ({one_line(err)})") from None
    tokens = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    if not tokens:
        raise InputError(f"{field}: {path.name} holds no token (one a line)")
    return tokens


def client_token(token_file: str | Path | None) -> str | None:
    """The bearer token sent to the API: the first one in token_file, else $MIAUDIT_TOKEN, else None."""
    if token_file is not None:
        return read_token_file(token_file)[0]
    return os.environ.get(TOKEN_ENV) or None


def _retry_after(response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:  # an HTTP date: not sent by miaudit serve; fall back to backoff
        return None


def _detail(response) -> str:
    try:
        detail = response.json().get("detail")
    except Exception:  # not JSON
        detail = response.text
    return " ".join(str(detail).split())[:200]


class HttpTarget(TargetOutputs):
    """A classifier behind an HTTP prediction API, for records float32 [n, *feature_shape].

    output: "probabilities" or "labels" (what the endpoint answers). batch_size: records per
    request; timeout: seconds per request; retries: extra tries after a failure, waiting
    backoff * 2**attempt seconds (or Retry-After), at most max_wait seconds per wait.
    query_budget: records it may send in all (None: no limit). Counters: queries_sent (records
    answered), requests, seconds (wall time spent in requests, retries included).
    """

    def __init__(self, url: str, token: str | None, feature_shape: Sequence[int], n_classes: int, *,
                 output: str = "probabilities", batch_size: int = 256, timeout: float = 30.0, retries: int = 4,
                 backoff: float = 0.5, max_wait: float = 60.0, query_budget: int | None = None,
                 transport=None) -> None:
        if output not in ("probabilities", "labels"):
            raise InputError(f"output: {output!r} is not probabilities or labels")
        self.url, self.base, self.name = url, api_base(url), url
        self.token, self.feature_shape, self.n_classes = token, tuple(int(d) for d in feature_shape), int(n_classes)
        self.output, self.batch_size, self.timeout = output, int(batch_size), float(timeout)
        self.retries, self.backoff, self.max_wait = int(retries), float(backoff), float(max_wait)
        self.query_budget = query_budget
        self.queries_sent, self.requests, self.seconds = 0, 0, 0.0
        self._transport, self._http = transport, None

    @property
    def label_only(self) -> bool:
        return self.output == "labels"

    @property
    def remaining(self) -> int | None:
        """Records the budget still allows (None: no budget)."""
        return None if self.query_budget is None else self.query_budget - self.queries_sent

    def _client(self):
        if self._http is None:
            httpx = require("httpx", "serve", field=self.url)
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            self._http = httpx.Client(headers=headers, timeout=self.timeout, transport=self._transport)
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_http": None, "_transport": None}

    def reserve(self, n_records: int, what: str = "the next request") -> None:
        """QueryBudgetExhausted, before anything is sent, when n_records more would pass the budget."""
        left = self.remaining
        if left is not None and n_records > left:
            raise QueryBudgetExhausted(
                f"--query-budget: {what} needs {n_records} queries, {left} of {self.query_budget} are left "
                f"({self.queries_sent} answered by {self.url}); raise --query-budget or audit fewer records",
                self.queries_sent, self.query_budget)

    def request(self, method: str, path: str, payload: dict | None = None) -> dict:
        """The JSON answer of ``method {base}{path}``, retrying connection errors, 5xx and 429
        (honouring Retry-After); a one-line HttpTargetError (or subclass) on anything else."""
        httpx = require("httpx", "serve", field=self.url)
        url = self.base + path
        problem = ""
        for attempt in range(self.retries + 1):
            started, response = time.perf_counter(), None
            try:
                response = self._client().request(method, url, json=payload)
            except httpx.TransportError as err:  # refused, reset, timed out, protocol error
                problem = f"{type(err).__name__}: {one_line(err) or 'no answer'}"
            finally:
                self.seconds += time.perf_counter() - started
            wait = self.backoff * 2 ** attempt
            if response is not None:
                status, retry_after = response.status_code, _retry_after(response)
                if status == 200:
                    self.requests += 1
                    try:
                        return response.json()
                    except ValueError:
                        raise HttpTargetError(f"{url}: answers 200 with a body that is not JSON") from None
                if status == 429 and BUDGET_HEADER in response.headers and retry_after is None:
                    raise QueryBudgetExhausted(
                        f"{self.url}: the server's query budget is spent ({_detail(response)}); "
                        f"{self.queries_sent} records were answered", self.queries_sent, None)
                if status == 413:
                    raise PayloadTooLarge(f"{self.url}: {method} {path} answers 413 ({_detail(response)})")
                if status in (401, 403):
                    raise HttpTargetError(f"--token-file: {self.url} refuses the token ({status} {_detail(response)})")
                if status != 429 and status < 500:
                    raise HttpTargetError(f"{self.url}: {method} {path} answers {status} ({_detail(response)})")
                problem = f"{status} {_detail(response)}"
                wait = retry_after if retry_after is not None else wait
            if attempt == self.retries:
                break
            if wait > self.max_wait:
                raise TargetUnreachable(f"{url}: asks to wait {wait:.0f} s (> {self.max_wait:.0f} s): {problem}")
            time.sleep(wait)
            self.seconds += wait
        raise TargetUnreachable(f"{url}: no answer after {self.retries + 1} tries ({problem})")

    def _query(self, x: np.ndarray) -> np.ndarray:
        """The endpoint's answers for x float32 [n, *feature_shape]: float64 [n, C] probabilities or
        int64 [n] labels, in batches of at most batch_size records."""
        x = np.asarray(x, np.float32)
        if x.shape[1:] != self.feature_shape and x.shape[1:] != (prod(self.feature_shape),):
            raise InputError(f"records: shape {x.shape[1:]}, {self.url} takes {self.feature_shape}")
        flat = x.reshape(len(x), -1)
        self.reserve(len(flat))
        key = "labels" if self.label_only else "probabilities"
        parts, start = [], 0
        while start < len(flat):
            chunk = flat[start:start + self.batch_size]
            try:
                answer = self.request("POST", "/predict", {"records": chunk.tolist()})
            except PayloadTooLarge:
                if len(chunk) == 1:
                    raise
                self.batch_size = max(1, len(chunk) // 2)  # the server's body limit: smaller batches from now on
                continue
            parts.append(self._checked(answer, key, len(chunk)))
            self.queries_sent += len(chunk)
            start += len(chunk)
        if not parts:
            return np.zeros((0,) if self.label_only else (0, self.n_classes))
        return np.concatenate(parts)

    def _checked(self, answer: dict, key: str, n: int) -> np.ndarray:
        if not isinstance(answer, dict) or key not in answer:
            keys = ", ".join(map(str, answer)) if isinstance(answer, dict) else type(answer).__name__
            raise HttpTargetError(f"{self.url}: answer without {key!r} (got {keys})")
        try:
            values = np.asarray(answer[key], np.float64)
        except (TypeError, ValueError):
            raise HttpTargetError(f"{self.url}: {key} are not numbers") from None
        shape = (n,) if key == "labels" else (n, self.n_classes)
        if values.shape != shape or not np.isfinite(values).all():
            raise HttpTargetError(f"{self.url}: {key} of shape {values.shape} for {n} records, expected {shape}")
        if key == "labels":
            if (values != np.round(values)).any() or values.min() < 0 or values.max() >= self.n_classes:
                raise HttpTargetError(f"{self.url}: labels outside 0..{self.n_classes - 1}")
            return values.astype(np.int64)
        if (values < -1e-6).any():
            raise HttpTargetError(f"{self.url}: negative probabilities")
        return values

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """float64 [n, C] as the endpoint answers them (top-k and rounded outputs included)."""
        if self.label_only:
            raise LabelOnlyTarget(f"--target {self.url}: answers labels only; attacks that need scores "
                                  "cannot run against it (use label-only attacks)")
        return self._query(x)

    def logits(self, x: np.ndarray) -> np.ndarray:
        """float32 [n, C] log-probabilities (floored at 1e-12); LabelOnlyTarget for a label endpoint."""
        return as_logits(self.probabilities(x), "probabilities")

    def predict(self, x: np.ndarray) -> np.ndarray:
        """int64 [n]: the endpoint's labels, or the most likely class of its probabilities."""
        if self.label_only:
            return self._query(x)
        return self.probabilities(x).argmax(axis=1).astype(np.int64)

    def __repr__(self) -> str:
        return f"HttpTarget(url={self.url!r}, output={self.output!r}, n_classes={self.n_classes})"


def _describe(target: HttpTarget, feature_shape: tuple[int, ...], n_classes: int) -> dict:
    """The API's model description: GET {base}/model, or (a server without it) one probe record."""
    try:
        return target.request("GET", "/model")
    except TargetUnreachable:
        raise
    except HttpTargetError as err:
        if " answers 404 " not in str(err):
            raise
    target.reserve(1, "the probe record (the API has no /model)")
    answer = target.request("POST", "/predict", {"records": [[0.0] * prod(feature_shape)]})
    target.queries_sent += 1
    if isinstance(answer, dict) and "labels" in answer:
        return {"n_features": prod(feature_shape), "n_classes": n_classes, "output": "labels"}
    values = np.asarray(answer.get("probabilities") if isinstance(answer, dict) else None, dtype=object)
    width = values.shape[-1] if values.ndim == 2 else None
    return {"n_features": prod(feature_shape), "n_classes": width, "output": "probabilities"}


def load_http_target(url: str, feature_shape: Sequence[int], n_classes: int, token_file: str | Path | None = None,
                     query_budget: int | None = None, **options) -> HttpTarget:
    """The API at ``url`` as an HttpTarget, checked against records of feature_shape and n_classes
    classes before any record is sent (its GET /model answer; a probe record without it). The
    token comes from token_file (first line) or $MIAUDIT_TOKEN. options: HttpTarget's."""
    require("httpx", "serve", field="--target")
    feature_shape = tuple(int(d) for d in feature_shape)
    if query_budget is not None and int(query_budget) < 1:
        raise InputError(f"--query-budget: must be at least 1, got {query_budget}")
    parts = urlsplit(url)
    if not parts.hostname:
        raise InputError(f"--target: {url!r} names no host")
    target = HttpTarget(url, client_token(token_file), feature_shape, n_classes, query_budget=query_budget, **options)
    info = _describe(target, feature_shape, n_classes)
    n_features = prod(feature_shape)
    if info.get("n_features") != n_features:
        raise InputError(f"--target {url}: takes records of {info.get('n_features')} features, "
                         f"the data has {n_features}")
    if info.get("n_classes") != n_classes:
        raise InputError(f"--target {url}: gives {info.get('n_classes')} classes, the data has {n_classes}")
    if info.get("output") not in ("probabilities", "labels"):
        raise InputError(f"--target {url}: answers {info.get('output')!r}, not probabilities or labels")
    target.output = info["output"]
    if isinstance(info.get("max_batch"), int) and info["max_batch"] > 0:
        target.batch_size = min(target.batch_size, info["max_batch"])
    return target


__all__ = ["HttpTarget", "HttpTargetError", "LabelOnlyTarget", "PayloadTooLarge", "QueryBudgetExhausted",
           "TargetUnreachable", "api_base", "client_token", "is_url", "load_http_target", "read_token_file"]

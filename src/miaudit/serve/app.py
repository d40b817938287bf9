"""The FastAPI app of ``miaudit serve``: POST /v1/predict, GET /v1/model, GET /v1/health, /v1/openapi.json.

Order of checks on /v1/predict: body bytes (413, before the body is read whole), bearer token (401),
rate limit (429 with Retry-After), request shape / types / finiteness (422 naming the field), batch
size (413), query budget (429 with X-Query-Budget-Remaining, no Retry-After: it does not refill).
Each request is logged as one line (method, path, status, token id, record count, latency),
never with record contents or outputs.
"""
# no `from __future__ import annotations`: FastAPI reads the request model from the live annotation
import logging
import secrets
import time
from collections.abc import Sequence
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from starlette.concurrency import run_in_threadpool

import miaudit
from miaudit.serve.limits import TokenLimits
from miaudit.serve.model_file import ServedModel
from miaudit.serve.outputs import apply_output
from miaudit.serve.settings import ServeSettings, token_id
from miaudit.targets.http_target import BUDGET_HEADER

LOGGER = logging.getLogger("miaudit.serve")
FLOAT32_MAX = float(np.finfo(np.float32).max)


class ErrorBody(BaseModel):
    """Every error answer: ``detail`` says what is wrong, naming the field (422) or the limit."""

    detail: str
    errors: list[dict[str, str]] | None = None


class ProbabilitiesAnswer(BaseModel):
    probabilities: list[list[float]] = Field(description="One probability vector per record, in request order.")


class LabelsAnswer(BaseModel):
    labels: list[int] = Field(description="The predicted class of each record, in request order.")


class ModelInfo(BaseModel):
    name: str
    feature_shape: list[int]
    n_features: int = Field(description="Values per record in /v1/predict (the record shape, flattened in C order).")
    n_classes: int
    output: str = Field(description="'probabilities' or 'labels': the field /v1/predict answers.")
    output_option: str
    max_batch: int
    query_budget: int | None = Field(description="Records each token may have answered (null: no limit).")
    remaining: int | None = Field(description="Records this token may still have answered (null: no limit).")


def request_model(n_features: int, max_batch: int | None = None) -> type[BaseModel]:
    """The /v1/predict body: {"records": [[n_features finite numbers], ...]} with at least one record.
    max_batch: stated in the schema as the records' maxItems (the handler answers 413 beyond it, so
    clients and schema-driven testers know a request over it is not a valid one)."""
    value = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=-FLOAT32_MAX, le=FLOAT32_MAX)]
    record = Annotated[list[value], Field(min_length=n_features, max_length=n_features)]
    return create_model(
        "PredictRequest", __config__=ConfigDict(extra="forbid"),
        records=(Annotated[list[record], Field(min_length=1, json_schema_extra=(
            {"maxItems": max_batch} if max_batch else None), description=(
            f"Records, each its {n_features} feature values (one record's shape flattened in C order)."))], ...))


def field_name(loc: Sequence[Any]) -> str:
    """A validation error's location as a field: ("body", "records", 3, 5) -> "records[3][5]"."""
    parts = [p for p in loc if p != "body"]
    name = ""
    for p in parts:
        name += f"[{p}]" if isinstance(p, int) else (f".{p}" if name else str(p))
    return name or "body"


def _error_entry(error: dict) -> dict[str, str]:
    """{"field", "message"} of one pydantic / FastAPI validation error (the input is not echoed)."""
    kind, loc, message = error.get("type", ""), tuple(error.get("loc", ())), str(error.get("msg", "invalid"))
    if kind == "json_invalid":
        return {"field": "body", "message": message}
    if kind in ("less_than_equal", "greater_than_equal"):
        message = f"outside the float32 range (magnitude at most {FLOAT32_MAX:.7g})"
    return {"field": field_name(loc), "message": message}


async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [_error_entry(e) for e in exc.errors()]
    first = errors[0] if errors else {"field": "body", "message": "invalid request"}
    return JSONResponse({"detail": f"{first['field']}: {first['message']}", "errors": errors[:20]}, 422)


class RequestLog:
    """ASGI middleware: one log line per request, without record contents or outputs."""

    def __init__(self, app, logger: logging.Logger = LOGGER) -> None:
        self.app, self.logger = app, logger

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), [500]
        state = scope.setdefault("state", {})

        async def send_status(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.logger.info("%s %s status=%d token=%s records=%s latency_ms=%.1f", scope["method"], scope["path"],
                             status[0], state.get("token", "-"), state.get("records", "-"),
                             1000 * (time.perf_counter() - started))


class BodyLimit:
    """ASGI middleware: 413 for a request body over max_bytes (by Content-Length, or as it streams in)."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app, self.max_bytes = app, int(max_bytes)

    async def _refuse(self, scope, receive, send, status: int, detail: str) -> None:
        await JSONResponse({"detail": detail}, status)(scope, receive, send)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        too_big = f"body: more than {self.max_bytes} bytes (--max-body-bytes)"
        if declared is not None:
            if not declared.isdigit():
                return await self._refuse(scope, receive, send, 400, "Content-Length: not a number")
            if int(declared) > self.max_bytes:
                return await self._refuse(scope, receive, send, 413, too_big)
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                return await self._refuse(scope, receive, send, 413, too_big)
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    what = {400: "Malformed request", 401: "Missing or wrong bearer token",
            413: "Too many records in one request, or too many body bytes",
            422: "Records of the wrong shape or type, values that are not finite numbers, or records the model "
                 "cannot score",
            429: "Rate limit (Retry-After says when to retry) or query budget spent (X-Query-Budget-Remaining)"}
    return {code: {"model": ErrorBody, "description": what[code]} for code in codes}


def create_app(model: ServedModel, settings: ServeSettings, tokens: Sequence[str],
               logger: logging.Logger = LOGGER) -> FastAPI:
    """The prediction API for ``model`` with ``settings``' limits, accepting any of ``tokens``
    (compared in constant time). ``app.state.limits`` holds the per-token counters."""
    if not tokens:
        raise ValueError("create_app needs at least one token")
    known = [(t.encode(), token_id(t)) for t in tokens]
    limits = TokenLimits(settings.rate_limit, settings.query_budget)
    option = settings.output
    answer_model = LabelsAnswer if option.kind == "label" else ProbabilitiesAnswer
    body_model = request_model(model.n_features, settings.max_batch)
    app = FastAPI(title="miaudit serve", version=miaudit.__version__, docs_url=None, redoc_url=None,
                  openapi_url="/v1/openapi.json",
                  description=f"Black-box prediction API for {model.file}: {model.n_features} features per record, "
                              f"{model.n_classes} classes, output {option}.")
    app.state.limits, app.state.model, app.state.settings = limits, model, settings
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestLog, logger=logger)
    bearer = HTTPBearer(auto_error=False, description="One of the server's tokens (--token-file).")

    async def authorize(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> str:
        """The caller's token id; 401 without a known bearer token (every token compared)."""
        given = (credentials.credentials if credentials else "").encode()
        match = None
        for token, tid in known:
            if secrets.compare_digest(given, token):
                match = tid
        if match is None:
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})
        request.state.token = match
        return match

    async def admit(tid: str = Depends(authorize)) -> str:
        """The token id of a request the rate limit admits; 429 with Retry-After otherwise."""
        wait = limits.admit_request(tid)
        if wait is not None:
            raise HTTPException(429, f"rate limit: {settings.rate_limit:g} requests per second per token",
                                headers={"Retry-After": str(wait)})
        return tid

    @app.get("/v1/health", tags=["service"])
    def health() -> dict[str, str]:
        """Liveness: {"status": "ok"} (no token needed, nothing about the model)."""
        return {"status": "ok"}

    @app.get("/v1/model", response_model=ModelInfo, responses=_errors(401), tags=["predict"])
    def model_info(tid: str = Depends(authorize)) -> ModelInfo:
        """What /v1/predict takes and answers, and this token's remaining budget."""
        return ModelInfo(name=model.file, feature_shape=list(model.feature_shape), n_features=model.n_features,
                         n_classes=model.n_classes, output=option.answers, output_option=str(option),
                         max_batch=settings.max_batch, query_budget=settings.query_budget,
                         remaining=limits.remaining(tid))

    def score(records: list[list[float]]) -> tuple[np.ndarray | None, str | None]:
        """(probabilities [n, C], None), or (None, why the model cannot score these records)."""
        try:
            probabilities = model.probabilities(np.asarray(records, np.float32))
        except Exception as err:  # checked at start on probe records, so the records' values are the cause
            return None, f"it fails ({type(err).__name__})"
        return (probabilities, None) if np.isfinite(probabilities).all() else (None, "its output is not finite")

    body_schema = {"required": True, "content": {"application/json": {"schema": body_model.model_json_schema()}}}

    @app.post("/v1/predict", response_model=answer_model, responses=_errors(400, 401, 413, 422, 429),
              tags=["predict"], openapi_extra={"requestBody": body_schema})
    async def predict(request: Request, tid: str = Depends(admit)) -> JSONResponse:
        """The model's answer for each record (probabilities or labels, per the server's --output)."""
        try:  # pydantic's own JSON parser: a third of json.loads's time on 100 x 64 floats
            body = body_model.model_validate_json(await request.body())
        except ValidationError as err:
            raise RequestValidationError(err.errors(include_input=False, include_url=False)) from None
        n = len(body.records)
        request.state.records = n
        if n > settings.max_batch:
            raise HTTPException(413, f"records: {n} in one request, at most {settings.max_batch} (--max-batch)")
        if not limits.admit_records(tid, n):
            left = limits.remaining(tid)
            raise HTTPException(429, f"query budget spent: {n} records asked, {left} of {settings.query_budget} "
                                     "left for this token", headers={BUDGET_HEADER: str(left)})
        probabilities, problem = await run_in_threadpool(score, body.records)
        if problem:  # logged by kind only: records stay out of the logs
            limits.refund_records(tid, n)
            logger.warning("model cannot score a batch: %s", problem)
            return JSONResponse({"detail": f"records: the model cannot score these records: {problem} "
                                           "(values far outside the data's range?)"}, 422)
        headers = {BUDGET_HEADER: str(limits.remaining(tid))} if settings.query_budget is not None else None
        return JSONResponse(apply_output(probabilities, option), headers=headers)

    return app

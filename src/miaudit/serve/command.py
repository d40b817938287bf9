"""What ``miaudit serve MODEL_FILE`` does: check everything, bind the port, then serve until stopped."""
from __future__ import annotations

import logging
from pathlib import Path

from miaudit.extras import require
from miaudit.serve.model_file import load_served_model
from miaudit.serve.server import bind, configure_logging, is_loopback, run, url_of
from miaudit.serve.settings import make_settings, parse_output, parse_rate, read_tokens

LOGGER = logging.getLogger("miaudit.serve")


def prepare(model_file: str | Path, *, token_file: str | Path | None = None, host: str = "127.0.0.1",
            port: int = 8000, output: str = "probs", max_batch: int | None = None,
            max_body_bytes: int | None = None, query_budget: int | None = None, rate_limit: str | None = None,
            dataset: str | None = None, features: str | None = None, classes: int | None = None,
            data_dir: str | None = None, trust_pickle: bool = False):
    """(app, bound socket, served model, settings, token count): every check done (tokens, flags, the model file
    on probe records, the port) before anything is served; InputError naming the first problem."""
    for module in ("fastapi", "uvicorn"):
        require(module, "serve", field="miaudit serve")
    from miaudit.serve.app import create_app

    tokens = read_tokens(token_file)
    rate = parse_rate(rate_limit)
    parse_output(output)  # flag syntax first; the class bound once the model is known
    settings = make_settings(host=host, port=port, max_batch=max_batch, max_body_bytes=max_body_bytes,
                             query_budget=query_budget, rate_limit=rate)
    model = load_served_model(model_file, features, classes, dataset, data_dir, trust_pickle)
    settings = settings.model_copy(update={"output": parse_output(output, model.n_classes)})
    sock = bind(settings.host, settings.port)
    return create_app(model, settings, tokens), sock, model, settings, len(tokens)


def serve_model_file(model_file: str | Path, *, log_level: str = "info", **options) -> None:
    """Serve ``model_file`` (see ``prepare`` for options) in the foreground until interrupted."""

    app, sock, model, settings, n_tokens = prepare(model_file, **options)
    configure_logging()
    if not is_loopback(settings.host):
        LOGGER.warning("listening on %s: reachable from other machines, and http sends tokens in clear text; "
                       "put it behind TLS", settings.host)
    limits = [f"at most {settings.max_batch} records and {settings.max_body_bytes} bytes a request"]
    if settings.rate_limit:
        limits.append(f"{settings.rate_limit:g} requests/s per token")
    if settings.query_budget:
        limits.append(f"a budget of {settings.query_budget} records per token")
    LOGGER.info("serving %s (records of shape %s, %d classes, output %s) on %s with %d token(s); %s",
                model.file, model.feature_shape, model.n_classes, settings.output, url_of(sock), n_tokens,
                ", ".join(limits))
    run(app, sock, log_level=log_level)

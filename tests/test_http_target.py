"""HttpTarget against a real uvicorn server on 127.0.0.1 (ephemeral port): the same outputs as the
model file in process, the query budget (ours and the server's), retries, a dead server, label-only
endpoints, and checks at load."""
from __future__ import annotations

import pickle
import time

import numpy as np
import pytest
from fastapi.responses import JSONResponse
from scipy.special import log_softmax
from sklearn.datasets import load_digits
from sklearn.tree import DecisionTreeClassifier

from miaudit.data.scaling import fit_scaler
from miaudit.errors import InputError
from miaudit.models.recipe import TrainingRecipe
from miaudit.models.stack import train_mlp_stack
from miaudit.models.wrappers import SklearnTarget, StackTarget
from miaudit.serve.app import create_app
from miaudit.serve.model_file import load_served_model
from miaudit.serve.server import BackgroundServer
from miaudit.serve.settings import ServeSettings, parse_output, token_id
from miaudit.targets.export import save_target
from miaudit.targets.http_target import (
    HttpTarget,
    HttpTargetError,
    LabelOnlyTarget,
    QueryBudgetExhausted,
    TargetUnreachable,
    api_base,
    load_http_target,
)
from miaudit.targets.load import load_target

TOKEN = "http-target-test-token-0123"


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return x[:500].astype(np.float32), y[:500]


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory, digits, one_torch_thread):
    """A small MLP exported with save_target (scaler inside): ONNX with its shapes in metadata_props."""
    x, y = digits
    scaler = fit_scaler(x, "standard")
    masks = np.zeros((1, len(y)), bool)
    masks[0, :250] = True
    stack = train_mlp_stack(scaler.transform(x), y, masks, 10, (32,), TrainingRecipe(epochs=20), [0],
                            precision="float32")
    return save_target(StackTarget("mlp", stack), tmp_path_factory.mktemp("m") / "mlp.onnx", scaler=scaler)


@pytest.fixture(scope="module")
def token_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("t") / "token"
    path.write_text(TOKEN + "\n")
    return path


def server_for(path, wrap=None, **settings):
    app = create_app(load_served_model(path), ServeSettings(**settings), [TOKEN])
    return BackgroundServer(wrap(app) if wrap else app)


@pytest.fixture(scope="module")
def server(onnx_path):
    with server_for(onnx_path, max_batch=100) as running:
        yield running


def fast(**options):
    return {"retries": 2, "backoff": 0.01, "timeout": 5.0, **options}


def test_logits_over_http_equal_the_file_in_process(server, onnx_path, digits, token_file):
    x, _ = digits
    remote = load_target(server.url, (64,), 10, token_file=token_file)
    local = load_target(onnx_path, (64,), 10)
    assert isinstance(remote, HttpTarget) and remote.output == "probabilities" and remote.batch_size == 100
    got = remote.logits(x)
    expected = np.log(np.clip(np.exp(log_softmax(local.logits(x).astype(np.float64), axis=1)), 1e-12, None))
    assert got.dtype == np.float32 and got.shape == (500, 10)
    np.testing.assert_allclose(got, expected, atol=2e-5)
    np.testing.assert_allclose(remote.predict_proba(x), local.predict_proba(x), atol=1e-6)
    np.testing.assert_array_equal(remote.predict(x), local.predict(x))
    assert remote.queries_sent == 3 * 500 and remote.requests == 1 + 3 * 5 and remote.seconds > 0
    assert remote.accuracy(x, digits[1]) == local.accuracy(x, digits[1])


def test_audit_signals_over_http_equal_in_process(server, onnx_path, token_file):
    """The same config and seed draw the same records; their signals agree through either target."""
    from miaudit.audit.config import make_config
    from miaudit.audit.plan import make_plan
    from miaudit.audit.signal_stage import signal_request
    from miaudit.signals.matrix import target_signals

    plan = make_plan(make_config(dataset="digits", members=60, reference_models=0, queries=2, population=40,
                                 attacks="threshold-loss", input_scaling="none"))
    shape = plan.pool_x.shape[1:]
    local, remote = load_target(onnx_path, shape, 10), load_target(server.url, shape, 10, token_file=token_file)
    for ours, theirs in zip(target_signals(signal_request(plan), local), target_signals(signal_request(plan), remote)):
        reference = np.log(np.clip(np.exp(log_softmax(ours.astype(np.float64), axis=-1)), 1e-12, None))
        np.testing.assert_allclose(theirs, reference, atol=2e-5)
    assert remote.queries_sent == 2 * (len(plan.pool_x) + len(plan.population_x))


def test_an_audit_over_budget_stops_before_any_query(onnx_path, token_file):
    """compute_signals asks a budgeted target for the audit's whole count first (signals.matrix.target_queries)."""
    from miaudit.audit.config import make_config
    from miaudit.audit.plan import make_plan
    from miaudit.audit.signal_stage import signal_request
    from miaudit.signals.matrix import compute_signals, target_queries

    plan = make_plan(make_config(dataset="digits", members=30, reference_models=0, queries=2, population=20,
                                 attacks="threshold-loss", input_scaling="none"))
    needed = target_queries(signal_request(plan))
    assert needed == 2 * (60 + 20)
    with server_for(onnx_path) as running:
        short = load_target(running.url, (1, 8, 8), 10, token_file=token_file, query_budget=needed - 1)
        with pytest.raises(QueryBudgetExhausted, match=f"the audit needs {needed} queries, {needed - 1} of"):
            compute_signals(signal_request(plan), short, None)
        assert running.app.state.limits.answered(token_id(TOKEN)) == 0
        enough = load_target(running.url, (1, 8, 8), 10, token_file=token_file, query_budget=needed)
        inputs = compute_signals(signal_request(plan), enough, None)
        assert enough.queries_sent == needed and enough.remaining == 0
        assert inputs.target_logits.shape == (60, 2, 10)


def test_our_budget_is_checked_before_anything_is_sent(onnx_path, digits, token_file):
    x, _ = digits
    with server_for(onnx_path) as running:
        remote = load_target(running.url, (64,), 10, token_file=token_file, query_budget=50)
        remote.logits(x[:30])
        with pytest.raises(QueryBudgetExhausted, match="--query-budget: .* needs 30 queries, 20 of 50") as err:
            remote.logits(x[30:60])
        assert err.value.answered == 30 and err.value.budget == 50
        assert running.app.state.limits.answered(token_id(TOKEN)) == 30  # the refused request sent nothing
        remote.logits(x[:20])
        assert remote.remaining == 0


def test_the_servers_budget_stops_the_target(onnx_path, digits, token_file):
    x, _ = digits
    with server_for(onnx_path, query_budget=45, max_batch=20) as running:
        remote = load_target(running.url, (64,), 10, token_file=token_file)
        with pytest.raises(QueryBudgetExhausted, match="the server's query budget is spent") as err:
            remote.logits(x[:60])
        assert err.value.answered == 40 and remote.requests == 3  # /model, then two batches of 20


class Flaky:
    """ASGI wrapper answering the first /v1/predict requests with the given (status, headers)."""

    def __init__(self, app, failures) -> None:
        self.app, self.failures, self.predicts = app, list(failures), 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/predict":
            self.predicts += 1
            if self.failures:
                status, headers = self.failures.pop(0)
                return await JSONResponse({"detail": "busy"}, status, headers=headers)(scope, receive, send)
        await self.app(scope, receive, send)


def test_retries_5xx_and_429_then_succeeds(onnx_path, digits, token_file):
    x, _ = digits
    flaky = []
    wrap = lambda app: flaky.append(Flaky(app, [(503, {}), (502, {}), (429, {"Retry-After": "1"})])) or flaky[0]
    with server_for(onnx_path, wrap=wrap) as running:
        remote = load_http_target(running.url, (64,), 10, token_file=token_file, **fast(retries=3))
        started = time.perf_counter()
        got = remote.logits(x[:10])
        assert time.perf_counter() - started >= 1.0  # Retry-After honoured
    assert flaky[0].predicts == 4 and remote.requests == 2 and got.shape == (10, 10)


def test_batches_shrink_to_the_servers_body_limit(onnx_path, digits, token_file):
    x = digits[0][:100] / 7  # ~19 characters a value in JSON: ~12 records fit in 16 KiB
    with server_for(onnx_path, max_body_bytes=16 * 1024) as running:
        remote = load_http_target(running.url, (64,), 10, token_file=token_file, batch_size=100, **fast())
        local = load_target(onnx_path, (64,), 10)
        np.testing.assert_allclose(remote.predict_proba(x[:100]), local.predict_proba(x[:100]), atol=1e-6)
    assert remote.batch_size < 16 and remote.queries_sent == 100


def test_an_api_without_model_description_is_probed_with_one_record(onnx_path, digits, token_file):
    x, _ = digits

    def without_model(app):
        async def wrapped(scope, receive, send):
            if scope["type"] == "http" and scope["path"] == "/v1/model":
                return await JSONResponse({"detail": "Not Found"}, 404)(scope, receive, send)
            await app(scope, receive, send)
        return wrapped

    with server_for(onnx_path, wrap=without_model) as running:
        remote = load_http_target(running.url, (64,), 10, token_file=token_file, query_budget=11, **fast())
        assert remote.queries_sent == 1 and remote.output == "probabilities"
        remote.logits(x[:10])
        with pytest.raises(InputError, match="gives 10 classes, the data has 4"):
            load_http_target(running.url, (64,), 4, token_file=token_file, **fast())


def test_too_many_failures_give_one_line_naming_the_url(onnx_path, digits, token_file):
    x, _ = digits
    wrap = lambda app: Flaky(app, [(503, {})] * 10)
    with server_for(onnx_path, wrap=wrap) as running:
        remote = load_http_target(running.url, (64,), 10, token_file=token_file, **fast())
        with pytest.raises(TargetUnreachable, match=r"/v1/predict: no answer after 3 tries \(503 busy\)"):
            remote.logits(x[:10])


def test_a_server_that_dies_gives_a_clear_error(onnx_path, digits, token_file):
    x, _ = digits
    running = server_for(onnx_path).start()
    remote = load_http_target(running.url, (64,), 10, token_file=token_file, **fast())
    remote.logits(x[:5])
    running.stop()
    started = time.perf_counter()
    with pytest.raises(TargetUnreachable) as err:
        remote.logits(x[:5])
    assert time.perf_counter() - started < 10
    message = str(err.value)
    assert message.startswith(f"{running.url}/predict: no answer after 3 tries (ConnectError")
    assert "\n" not in message and remote.queries_sent == 5


def test_a_label_only_endpoint_gives_labels_and_refuses_scores(tmp_path, digits, token_file):
    x, y = digits
    tree = DecisionTreeClassifier(max_depth=6, random_state=0).fit(x, y)
    path = save_target(SklearnTarget("tree", tree, 10), tmp_path / "tree.skops")
    with server_for(path, output=parse_output("label")) as running:
        remote = load_target(running.url, (64,), 10, token_file=token_file)
        assert remote.label_only
        np.testing.assert_array_equal(remote.predict(x[:50]), tree.predict(x[:50]))
        with pytest.raises(LabelOnlyTarget, match="answers labels only"):
            remote.logits(x[:5])
        assert remote.queries_sent == 50


def test_load_checks_shape_classes_and_token(server, token_file, tmp_path, monkeypatch):
    with pytest.raises(InputError, match="takes records of 64 features, the data has 32"):
        load_target(server.url, (32,), 10, token_file=token_file)
    with pytest.raises(InputError, match="gives 10 classes, the data has 3"):
        load_target(server.url, (64,), 3, token_file=token_file)
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-token-at-all-123\n")
    with pytest.raises(HttpTargetError, match="--token-file: .* refuses the token"):
        load_target(server.url, (64,), 10, token_file=wrong)
    monkeypatch.delenv("MIAUDIT_TOKEN", raising=False)
    with pytest.raises(HttpTargetError, match="refuses the token"):
        load_target(server.url, (64,), 10)
    monkeypatch.setenv("MIAUDIT_TOKEN", TOKEN)
    assert load_target(server.url, (1, 8, 8), 10).feature_shape == (1, 8, 8)
    with pytest.raises(InputError, match="--token-file: .* does not exist"):
        load_target(server.url, (64,), 10, token_file=tmp_path / "missing")
    with pytest.raises(InputError, match="--query-budget: must be at least 1"):
        load_target(server.url, (64,), 10, query_budget=0)


def test_nothing_listening_fails_at_load(token_file):
    with BackgroundServer(JSONResponse({})) as running:
        url = running.url
    with pytest.raises(TargetUnreachable, match="/v1/model: no answer after 2 tries"):
        load_http_target(url, (64,), 10, token_file=token_file, **fast(retries=1))


def test_pickles_without_its_connection(server, digits, token_file):
    x, _ = digits
    remote = load_target(server.url, (64,), 10, token_file=token_file, query_budget=100)
    remote.logits(x[:10])
    copy = pickle.loads(pickle.dumps(remote))
    np.testing.assert_array_equal(copy.logits(x[:10]), remote.logits(x[:10]))
    assert copy.remaining == 80


def test_api_base():
    assert api_base("http://127.0.0.1:8000") == "http://127.0.0.1:8000/v1"
    assert api_base("http://127.0.0.1:8000/v1/") == "http://127.0.0.1:8000/v1"
    assert api_base("https://host/v1/predict") == "https://host/v1"
    assert api_base("http://host/api/v2") == "http://host/api/v2"

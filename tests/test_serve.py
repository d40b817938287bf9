"""miaudit serve: a real uvicorn server on 127.0.0.1 (ephemeral port), started and stopped per test
module; auth (401), rate limit and budget (429), limits (413), validation (422), output options,
start-up checks of the model file, request logs, and the served OpenAPI schema under schemathesis."""
from __future__ import annotations

import logging
import re
import sys
import time

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from miaudit.data.scaling import fit_scaler
from miaudit.errors import InputError
from miaudit.models.wrappers import SklearnTarget
from miaudit.serve.app import create_app, field_name
from miaudit.serve.command import prepare
from miaudit.serve.limits import TokenLimits
from miaudit.serve.model_file import load_served_model
from miaudit.serve.outputs import apply_output, labels, rounded, top_k
from miaudit.serve.server import BackgroundServer
from miaudit.serve.settings import ServeSettings, parse_output, parse_rate, read_tokens, token_id
from miaudit.targets.export import save_target

TOKEN, OTHER = "serve-test-token-0123456789", "second-token-abcdefghijklmnop"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return x[:400].astype(np.float32), y[:400]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory, digits):
    """A logistic regression exported with save_target (skops, scaler in front)."""
    x, y = digits
    scaler = fit_scaler(x, "standard")
    estimator = LogisticRegression(max_iter=300).fit(scaler.transform(x), y)
    return save_target(SklearnTarget("logreg", estimator, 10), tmp_path_factory.mktemp("m") / "logreg.skops",
                       scaler=scaler)


@pytest.fixture(scope="module")
def model(model_path):
    """The exported file as served with no shape flags."""
    return load_served_model(model_path)


def serve(model, tokens=(TOKEN, OTHER), **settings):
    return BackgroundServer(create_app(model, ServeSettings(**settings), list(tokens)))


@pytest.fixture(scope="module")
def server(model):
    with serve(model, max_batch=50, max_body_bytes=64 * 1024) as running:
        yield running


def post(server, records, headers=AUTH, **kwargs):
    return httpx.post(server.url + "/predict", json={"records": records}, headers=headers, timeout=10, **kwargs)


def test_serves_the_models_probabilities_on_loopback(server, model, digits):
    x, _ = digits
    assert server.url.startswith("http://127.0.0.1:") and server.port > 0
    assert model.feature_shape == (64,) and model.n_classes == 10  # from the skops estimator itself
    answer = post(server, x[:20].tolist())
    assert answer.status_code == 200
    got = np.asarray(answer.json()["probabilities"])
    np.testing.assert_allclose(got, model.target.predict_proba(x[:20]), rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-9)
    health = httpx.get(server.url + "/health")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    info = httpx.get(server.url + "/model", headers=AUTH).json()
    assert (info["n_features"], info["n_classes"], info["output"], info["max_batch"]) == (64, 10, "probabilities", 50)


def test_missing_or_wrong_token_is_401(server, digits):
    x, _ = digits
    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": TOKEN},
                    {"Authorization": f"Bearer {TOKEN[:-1]}"}, {"Authorization": f"Basic {TOKEN}"}):
        answer = post(server, x[:2].tolist(), headers=headers)
        assert answer.status_code == 401, headers
        assert answer.headers["WWW-Authenticate"] == "Bearer"
        assert "probabilities" not in answer.text
    assert httpx.get(server.url + "/model").status_code == 401
    assert post(server, x[:2].tolist(), headers={"Authorization": f"Bearer {OTHER}"}).status_code == 200


def test_too_many_records_or_bytes_is_413(server, digits):
    x, _ = digits
    answer = post(server, x[:51].tolist())
    assert answer.status_code == 413 and "--max-batch" in answer.json()["detail"]
    assert post(server, x[:50].tolist()).status_code == 200
    big = {"records": [[0.123456789] * 64] * 100}  # ~ 90 kB > 64 KiB, refused before parsing
    answer = httpx.post(server.url + "/predict", json=big, headers=AUTH, timeout=10)
    assert answer.status_code == 413 and "--max-body-bytes" in answer.json()["detail"]


def _body(bad: str, row: int = 1, col: int = 5) -> bytes:
    """Three 64-value records as JSON text, record ``row``'s value ``col`` replaced by ``bad``."""
    records = [["0.5"] * 64 for _ in range(3)]
    records[row][col] = bad
    return ('{"records": [' + ", ".join("[" + ", ".join(r) + "]" for r in records) + "]}").encode()


@pytest.mark.parametrize("body, field", [
    (_body("NaN"), "records[1][5]"),
    (_body("-Infinity", 2, 63), "records[2][63]"),
    (_body('"1.0"', 0, 0), "records[0][0]"),
    (_body("true"), "records[1][5]"),
    (_body("null"), "records[1][5]"),
    (_body("1e39"), "records[1][5]"),
    (b'{"rows": [[1.0]]}', "records"),
    (b'{"records": []}', "records"),
    (b'{"records": [[1.0, 2.0]', "body"),
])
def test_bad_records_are_422_naming_the_field(server, body, field):
    answer = httpx.post(server.url + "/predict", content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith(f"{field}: ")
    assert post(server, [[0.5] * 64]).status_code == 200  # the same records with finite numbers pass


def test_a_record_of_the_wrong_length_is_422_naming_it(server, digits):
    x, _ = digits
    records = x[:3].tolist()
    records[2] = records[2][:63]
    answer = post(server, records)
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith("records[2]: ") and "64" in answer.json()["detail"]
    assert field_name(("body", "records", 3, 5)) == "records[3][5]"


def test_rate_limit_is_429_with_retry_after_per_token(model, digits):
    x, _ = digits
    with serve(model, rate_limit=0.2) as running:  # one request per 5 s per token
        assert post(running, x[:1].tolist()).status_code == 200
        limited = post(running, x[:1].tolist())
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["Retry-After"]) <= 5
        assert post(running, x[:1].tolist(), headers={"Authorization": f"Bearer {OTHER}"}).status_code == 200


def test_token_bucket_refills_at_the_rate():
    now = [0.0]
    limits = TokenLimits(rate=2.0, clock=lambda: now[0])  # bursts of 2, then one every 0.5 s
    assert limits.admit_request("a") is None and limits.admit_request("a") is None
    assert limits.admit_request("a") == 1
    now[0] = 0.5
    assert limits.admit_request("a") is None and limits.admit_request("a") == 1
    assert limits.admit_request("b") is None


def test_query_budget_is_429_without_retry_after(model, digits):
    x, _ = digits
    with serve(model, query_budget=10) as running:
        first = post(running, x[:6].tolist())
        assert first.status_code == 200 and first.headers["X-Query-Budget-Remaining"] == "4"
        refused = post(running, x[:6].tolist())
        assert refused.status_code == 429 and "Retry-After" not in refused.headers
        assert refused.headers["X-Query-Budget-Remaining"] == "4"
        last = post(running, x[:4].tolist())
        assert last.status_code == 200 and last.headers["X-Query-Budget-Remaining"] == "0"
        assert post(running, x[:1].tolist()).status_code == 429
        assert running.app.state.limits.answered(token_id(TOKEN)) == 10
        assert post(running, x[:3].tolist(), headers={"Authorization": f"Bearer {OTHER}"}).status_code == 200


def test_output_transforms():
    p = np.array([[0.1, 0.6, 0.3], [0.25, 0.25, 0.5]])
    np.testing.assert_array_equal(top_k(p, 1), [[0, 0.6, 0], [0, 0, 0.5]])
    np.testing.assert_array_equal(top_k(p, 2), [[0, 0.6, 0.3], [0.25, 0, 0.5]])  # tie: the lower class kept
    np.testing.assert_array_equal(rounded(np.array([[0.123, 0.877]]), 1), [[0.1, 0.9]])
    np.testing.assert_array_equal(labels(p), [1, 2])
    assert apply_output(p, parse_output("label")) == {"labels": [1, 2]}
    assert parse_output("top-k 2", 10).value == 2 and parse_output("rounded=3").kind == "rounded"
    for bad in ("top-k", "top-k 11", "probs 2", "softmax", "rounded 99"):
        with pytest.raises(InputError, match="--output"):
            parse_output(bad, 10)
    assert parse_rate("10/s") == 10 and parse_rate("120/min") == 2
    with pytest.raises(InputError, match="--rate-limit"):
        parse_rate("fast")


@pytest.mark.parametrize("option, key", [("label", "labels"), ("top-k 2", "probabilities"),
                                         ("rounded 2", "probabilities")])
def test_served_output_options(model, digits, option, key):
    x, _ = digits
    with serve(model, output=parse_output(option, 10)) as running:
        answer = post(running, x[:30].tolist())
        assert answer.status_code == 200 and list(answer.json()) == [key]
        info = httpx.get(running.url + "/model", headers=AUTH).json()
        assert info["output"] == key and info["output_option"] == option
    full = model.target.predict_proba(x[:30])
    got = np.asarray(answer.json()[key])
    if option == "label":
        np.testing.assert_array_equal(got, full.argmax(1))
    elif option == "top-k 2":
        assert ((got > 0).sum(1) <= 2).all()
        np.testing.assert_allclose(got.max(1), full.max(1), atol=1e-12)
    else:
        np.testing.assert_array_equal(got, np.round(full, 2))


def test_requests_are_logged_without_records_outputs_or_tokens(server, digits, caplog):
    x, _ = digits
    with caplog.at_level(logging.INFO, logger="miaudit.serve"):
        post(server, x[:7].tolist())
        post(server, x[:1].tolist(), headers={})
        time.sleep(0.05)
    lines = [r.getMessage() for r in caplog.records if r.name == "miaudit.serve"]
    ok = [line for line in lines if "status=200" in line]
    assert ok and f"token={token_id(TOKEN)}" in ok[-1] and "records=7" in ok[-1] and "latency_ms=" in ok[-1]
    assert any("status=401" in line and "token=-" in line for line in lines)
    line = re.compile(r"(GET|POST) /v1/\w+ status=\d{3} token=(-|[0-9a-f]{8}) records=(-|\d+) latency_ms=\d+\.\d")
    assert all(line.fullmatch(text) for text in lines), lines  # nothing else: no records, outputs or tokens


def test_tokens_come_from_a_file_or_the_environment(tmp_path):
    file = tmp_path / "tokens"
    file.write_text(f"# serving tokens\n{TOKEN}\n\n{OTHER}\n")
    assert read_tokens(file) == [TOKEN, OTHER]
    assert read_tokens(None, {"MIAUDIT_SERVE_TOKEN": f"{TOKEN},{OTHER}"}) == [TOKEN, OTHER]
    with pytest.raises(InputError, match="--token-file: no tokens"):
        read_tokens(None, {})
    file.write_text("short\n")
    with pytest.raises(InputError, match="shorter than 16"):
        read_tokens(file)


def test_a_corrupted_or_wrong_shape_model_fails_before_serving(tmp_path, model_path):
    tokens = tmp_path / "tokens"
    tokens.write_text(TOKEN + "\n")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07not an onnx graph" * 10)
    with pytest.raises(InputError, match="broken.onnx: "):
        prepare(broken, token_file=tokens, port=0, features="64", classes=10)
    truncated = tmp_path / "model.skops"
    truncated.write_bytes(b"PK\x03\x04 truncated zip")
    with pytest.raises(InputError, match="model.skops: "):
        prepare(truncated, token_file=tokens, port=0)
    with pytest.raises(InputError, match="takes 64 features, the data has 32"):
        load_served_model(model_path, features="32")
    with pytest.raises(InputError, match="classes"):
        load_served_model(model_path, classes=3)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.script
def test_torchscript_needs_its_shape_from_flags_or_a_dataset(tmp_path, digits):
    import torch

    module = torch.jit.script(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)).eval())
    path = tmp_path / "linear.pt"
    module.save(str(path))
    with pytest.raises(InputError, match="linear.pt: does not declare its record shape; pass --dataset"):
        load_served_model(path)
    for served in (load_served_model(path, features="1,8,8", classes=10), load_served_model(path, dataset="digits")):
        assert served.feature_shape == (1, 8, 8) and served.n_classes == 10
        x = digits[0][:5]
        expected = torch.softmax(module(torch.from_numpy(x.reshape(5, 1, 8, 8))), 1).detach().numpy()
        np.testing.assert_allclose(served.probabilities(x), expected, atol=1e-6)


def test_cli_serve_bad_input_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    from miaudit.cli import main

    tokens = tmp_path / "tokens"
    tokens.write_text(TOKEN + "\n")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"garbage")
    for args, message in (
        ([str(broken), "--token-file", str(tokens), "--features", "64", "--classes", "10"], "error: broken.onnx: "),
        ([str(broken), "--features", "64", "--classes", "10"], "error: --token-file: no tokens"),
        ([str(broken), "--token-file", str(tokens), "--output", "top-k"], "error: --output: top-k needs a number"),
    ):
        monkeypatch.delenv("MIAUDIT_SERVE_TOKEN", raising=False)
        monkeypatch.setattr(sys, "argv", ["miaudit", "serve", *args, "--port", "0"])
        with pytest.raises(SystemExit) as exit_info:
            main()
        err = capsys.readouterr().err
        assert exit_info.value.code == 2, err
        assert err.count("\n") == 1 and err.startswith(message), err


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # sklearn summing values near the float32 maximum
def test_schemathesis_finds_no_failure(tmp_path, digits):
    """Every default check, bounded (few examples, derandomized), on a model that scores any finite
    float32 record (a forest on raw features: a scaler in front overflows on values near 3e38, which
    the server answers 422 and schemathesis would count as a rejected valid request)."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings
    from sklearn.ensemble import RandomForestClassifier

    x, y = digits
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y)
    path = save_target(SklearnTarget("forest", forest, 10), tmp_path / "forest.skops")
    with serve(load_served_model(path), max_batch=20, max_body_bytes=256 * 1024) as running:
        base = running.url.removesuffix("/v1")
        schema = schemathesis.openapi.from_url(running.url + "/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert {op.path for op in operations} == {"/v1/health", "/v1/model", "/v1/predict"}
        for operation in operations:
            examples = 8 if operation.method.upper() == "POST" else 3

            @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy())
            def check(case):
                case.call_and_validate(base_url=base, headers=AUTH)

            check()


def test_a_corrupt_file_or_a_regressor_is_named_before_any_shape_is_asked_for(tmp_path):
    from sklearn.linear_model import LinearRegression
    from skops.io import dump

    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"garbage")
    with pytest.raises(InputError, match="garbage.onnx: not an ONNX model .*corrupt"):
        load_served_model(garbage)
    broken = tmp_path / "broken.pt2"
    broken.write_bytes(b"garbage")
    with pytest.raises(InputError, match="broken.pt2: .*corrupt"):
        load_served_model(broken)
    regressor = tmp_path / "regressor.skops"
    dump(LinearRegression().fit(np.arange(20.0).reshape(10, 2), np.arange(10.0)), regressor)
    with pytest.raises(InputError, match="regressor.skops: LinearRegression has no predict_proba"):
        load_served_model(regressor)


def test_the_schema_states_the_batch_limit(model_path):
    """The OpenAPI schema gives the records' maxItems = --max-batch: a schema-valid request is never
    refused 413 for its size (what a schema-driven client or tester relies on)."""
    with serve(load_served_model(model_path), max_batch=20) as running:
        schema = httpx.get(running.url + "/openapi.json").json()
    body = schema["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    records = body["properties"]["records"]
    assert records["maxItems"] == 20 and records["minItems"] == 1

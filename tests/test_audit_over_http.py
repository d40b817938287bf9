"""An audit of a model behind a prediction API: the same command and seed with --target URL in place
of the model draw the same records and give the same scores; budgets and a failing server end cleanly."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest

import miaudit
from miaudit.cli import main
from miaudit.serve.app import create_app
from miaudit.serve.model_file import load_served_model
from miaudit.serve.server import BackgroundServer
from miaudit.serve.settings import ServeSettings

TOKEN = "audit-over-http-token-4567"
SETTINGS = {"dataset": "digits", "members": 150, "epochs": 15, "hidden": "32", "population": 200, "seed": 5,
            "attacks": ["threshold-loss", "lira-online", "rmia"], "progress": False}


@pytest.fixture(scope="module")
def exported(tmp_path_factory, one_torch_thread):
    """(the in-process audit of an MLP with 4 reference models, its target exported to ONNX, a token file)."""
    folder = tmp_path_factory.mktemp("http")
    first = miaudit.audit(target="mlp", reference_models=4, cache_dir=str(folder / "cache"), **SETTINGS)
    token = folder / "token"
    token.write_text(TOKEN)
    return first, first.save_target(folder / "target.onnx"), token


def serve(path, wrap=None):
    app = create_app(load_served_model(path), ServeSettings(), [TOKEN])
    return BackgroundServer(wrap(app) if wrap else app)


def test_audit_over_http_gives_the_in_process_scores(exported, tmp_path):
    first, path, token = exported
    with serve(path) as server:
        remote = miaudit.audit(target=server.url, token_file=str(token), reference_architecture="mlp",
                               reference_models=4, cache_dir=str(tmp_path / "cache"), **SETTINGS)
    np.testing.assert_array_equal(remote.record_index, first.record_index)
    for a, b in zip(first.attacks, remote.attacks):
        np.testing.assert_allclose(b.scores, a.scores, rtol=1e-4, atol=1e-4, err_msg=a.name)
    assert remote.timing["target_queries"] == len(first.record_index) + 200
    queries = {a["name"]: a["queries"] for a in remote.to_dict()["attacks"]}
    assert queries == {"threshold-loss": 300, "lira-online": 300, "rmia": 300 + 200}
    assert remote.to_dict()["target_source"]["kind"] == "HTTP API"


def test_a_small_budget_audits_fewer_records_and_says_so(exported, tmp_path):
    first, path, token = exported
    with serve(path) as server:
        result = miaudit.audit(target=server.url, token_file=str(token), query_budget=200,
                               reference_models=0, cache_dir=str(tmp_path / "cache"),
                               **{**SETTINGS, "attacks": ["threshold-loss"]})
    assert len(result.record_index) == 200 and result.timing["target_queries"] == 200
    np.testing.assert_array_equal(result.record_index, first.record_index[:200])
    assert any("query budget 200: audited 200 of 300 records and 0 of 200 population" in n for n in result.notes)


def failing_after(requests: int):
    """An ASGI wrapper: the first ``requests`` predictions pass, then every request answers 503."""
    def wrap(app):
        seen = {"n": 0}

        async def wrapped(scope, receive, send):
            if scope["type"] == "http" and scope["path"].endswith("/predict"):
                seen["n"] += 1
                if seen["n"] > requests:
                    await send({"type": "http.response.start", "status": 503, "headers": []})
                    await send({"type": "http.response.body", "body": b"down"})
                    return
            await app(scope, receive, send)
        return wrapped
    return wrap


def test_a_server_that_fails_mid_audit_is_one_line_and_the_rerun_resumes(exported, tmp_path, monkeypatch, capsys):
    _, path, token = exported
    out, cache = tmp_path / "out", tmp_path / "cache"
    args = ["miaudit", "audit", "--quiet", "--dataset", "digits", "--members", "150", "--epochs", "15",
            "--hidden", "32", "--population", "200", "--seed", "5", "--reference-models", "4",
            "--reference-architecture", "mlp", "--attacks", "lira-online", "--token-file", str(token),
            "--cache-dir", str(cache), "--out", str(out)]
    with serve(path, failing_after(1)) as server:
        monkeypatch.setattr(sys, "argv", [*args, "--target", server.url])
        with pytest.raises(SystemExit) as stop:
            main()
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1 and err[0].startswith("error: ") and "503" in err[0], err
    assert not out.exists()
    with serve(path) as server:
        monkeypatch.setattr(sys, "argv", [*args, "--target", server.url])
        with pytest.raises(SystemExit) as stop:
            main()
    assert stop.value.code == 0
    timing = json.loads((out / "results.json").read_text())["timing"]
    assert timing["reference_models_from_cache"] == 4  # trained before the failure, kept


def test_a_label_only_api_is_audited_with_labels_alone(exported, tmp_path):
    from miaudit.serve.settings import parse_output

    first, path, token = exported
    app = create_app(load_served_model(path), ServeSettings(output=parse_output("label")), [TOKEN])
    with BackgroundServer(app) as server:
        result = miaudit.audit(target=server.url, token_file=str(token), reference_architecture="mlp",
                               reference_models=4, cache_dir=str(tmp_path / "cache"),
                               **{**SETTINGS, "attacks": ["threshold-loss", "label-only-gap", "label-only-noise"]})
    logits = result.inputs.target_logits[:, 0]
    assert np.isin(np.round(np.exp(logits), 6), (0.0, 1.0)).all()  # the attacks saw labels, nothing more
    np.testing.assert_array_equal(logits.argmax(1), first.inputs.target_logits[:, 0].argmax(1))
    assert np.isin(np.round(np.exp(result.inputs.reference_logits), 6), (0.0, 1.0)).all()  # references alike
    noise = result.attack("label-only-noise")
    assert noise.queries > len(result.record_index)  # it asked the API about noisy copies, counted
    assert result.timing["target_queries"] >= noise.queries

"""--device: cuda only where torch sees a GPU; without one, a one-line error (CLI exit 2)."""
from __future__ import annotations

import sys

import pytest
import torch

from miaudit.cli import main
from miaudit.errors import InputError
from miaudit.models.perf import resolve_device


def _cli(args, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["miaudit", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code, capsys.readouterr()


def test_resolve_device_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(InputError, match=r"--device cuda: torch sees no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(InputError, match="--device: 'tpu'"):
        resolve_device("tpu")


def test_auto_picks_cuda_when_a_gpu_is_there(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"
    assert resolve_device("cpu") == "cpu"


@pytest.mark.parametrize("args, must_mention", [
    (["--device", "cuda"], "--device cuda: torch sees no CUDA GPU"),
    (["--device", "gpu"], "device"),
    (["--target", "cnn-spec:conv(8,3),banana(2),dense(10)"], "unknown layer 'banana'"),
])
def test_cli_device_and_spec_errors_exit_2_with_one_line(args, must_mention, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "out"
    code, captured = _cli(["audit", "--quiet", "--epochs", "1", "--reference-models", "2", "--out", str(out),
                           *args], monkeypatch, capsys)
    assert code == 2, captured
    lines = [line for line in captured.err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and must_mention in lines[0], captured.err
    assert not out.exists() or not any(out.iterdir())

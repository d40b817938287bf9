"""Load on ``miaudit serve`` over loopback: N records in batches from C concurrent clients, 0 errors expected.

Trains a small MLP on the dataset (miaudit's stack, a few epochs), exports it with save_target (ONNX,
shapes in its metadata), starts ``miaudit serve`` on 127.0.0.1 in a subprocess (an ephemeral port,
read from its start-up line), and sends the first N records (cycled) as batches of B from C threads,
each with its own httpx client. Reports per-request latency p50 / p99 and records/s, then scores the
same batches in process (the ONNX file through load_target, one thread) for the same figures, and the
largest difference between the two answers. Bounded: N records, one pass, a 10 s timeout a request.

    .venv/bin/python benchmarks/serve_load.py [--records 10000] [--batch 100] [--clients 8]
        [--dataset digits] [--out benchmarks/results/serve_load.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import numpy as np

from miaudit.data import load_dataset
from miaudit.data.scaling import fit_scaler
from miaudit.models.recipe import TrainingRecipe
from miaudit.models.stack import train_mlp_stack
from miaudit.models.wrappers import StackTarget
from miaudit.targets.export import save_target
from miaudit.targets.load import load_target


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "mean_ms": round(float(ms.mean()), 2)}


def start_server(model: Path, token_file: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """``miaudit serve`` on 127.0.0.1, port 0; (process, base URL) once it answers /v1/health."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"),
                                                       os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen([sys.executable, "-m", "miaudit.cli", "serve", str(model), "--port", "0",
                                "--token-file", str(token_file), "--host", "127.0.0.1"],
                               stdout=subprocess.DEVNULL, stderr=log.open("w"), env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = re.search(r"on (http://127\.0\.0\.1:\d+/v1)", log.read_text())
        if found:
            url = found.group(1)
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    return process, url
            except httpx.TransportError:
                pass
        if process.poll() is not None:
            raise SystemExit(f"miaudit serve exited ({process.returncode}): {log.read_text()[-500:]}")
        time.sleep(0.2)
    process.terminate()
    raise SystemExit("miaudit serve did not start within 120 s")


def load_run(url: str, token: str, batches: list[np.ndarray], clients: int) -> dict:
    """Every batch POSTed once, by ``clients`` threads taking batches from a shared queue."""
    work: queue.Queue[int] = queue.Queue()
    for i in range(len(batches)):
        work.put(i)
    latencies: list[float] = []
    errors: list[str] = []
    answers: dict[int, np.ndarray] = {}
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=10.0) as http:
            while True:
                try:
                    i = work.get_nowait()
                except queue.Empty:
                    return
                payload = {"records": batches[i].reshape(len(batches[i]), -1).tolist()}
                started = time.perf_counter()
                try:
                    response = http.post(url + "/predict", json=payload)
                    ok = response.status_code == 200
                    body = response.json() if ok else response.text[:200]
                except httpx.HTTPError as err:
                    ok, body = False, f"{type(err).__name__}: {err}"
                elapsed = time.perf_counter() - started
                with lock:
                    if ok:
                        latencies.append(elapsed)
                        answers[i] = np.asarray(body["probabilities"])
                    else:
                        errors.append(str(body))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    n = sum(len(batches[i]) for i in answers)
    return {"requests": len(latencies), "errors": len(errors), "first_errors": errors[:3], "wall_s": round(wall, 3),
            "records_per_s": round(n / wall, 1), **percentiles(latencies), "answers": answers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "serve_load.json")
    args = parser.parse_args()

    ds = load_dataset(args.dataset)
    scaler = fit_scaler(ds.x, "auto")
    n_train = min(len(ds.y), 2000)
    masks = np.ones((1, n_train), bool)
    stack = train_mlp_stack(scaler.transform(ds.x[:n_train]), ds.y[:n_train], masks, ds.n_classes, (128,),
                            TrainingRecipe(epochs=args.epochs), [0], precision="float32")
    rows = np.arange(args.records) % len(ds.y)
    records = np.ascontiguousarray(ds.x[rows], np.float32)
    batches = [records[i:i + args.batch] for i in range(0, len(records), args.batch)]

    with tempfile.TemporaryDirectory() as tmp:
        model = save_target(StackTarget("mlp", stack), Path(tmp) / "mlp.onnx", scaler=scaler,
                            feature_shape=ds.feature_shape)
        token = secrets.token_urlsafe()
        (Path(tmp) / "tokens").write_text(token + "\n")
        process, url = start_server(model, Path(tmp) / "tokens", Path(tmp) / "serve.log")
        try:
            http = load_run(url, token, batches, args.clients)
        finally:
            process.terminate()
            process.wait(timeout=30)
            served_lines = sum(1 for line in (Path(tmp) / "serve.log").read_text().splitlines()
                               if "POST /v1/predict status=" in line)

        local = load_target(model, ds.feature_shape, ds.n_classes)
        latencies, outputs = [], []
        started = time.perf_counter()
        for batch in batches:
            t = time.perf_counter()
            outputs.append(local.predict_proba(batch.reshape(len(batch), *ds.feature_shape)))
            latencies.append(time.perf_counter() - t)
        wall = time.perf_counter() - started

    answers = http.pop("answers")
    diff = max((float(np.abs(answers[i] - outputs[i]).max()) for i in answers), default=float("nan"))
    result = {
        "benchmark": "serve_load", "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "dataset": ds.name, "features": int(np.prod(ds.feature_shape)), "classes": ds.n_classes,
        "model": "MLP 128 hidden, ONNX via save_target", "records": args.records, "batch": args.batch,
        "clients": args.clients, "http": http, "logged_predict_requests": served_lines,
        "in_process": {"requests": len(batches), "wall_s": round(wall, 3),
                       "records_per_s": round(args.records / wall, 1), **percentiles(latencies)},
        "max_abs_probability_difference": diff,
        "machine": {"cpus": os.cpu_count(), "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
                    "python": platform.python_version()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    h, p = result["http"], result["in_process"]
    print(f"{args.records} records of {ds.name} in batches of {args.batch} from {args.clients} clients over loopback: "
          f"{h['errors']} errors, p50 {h['p50_ms']} ms, p99 {h['p99_ms']} ms a request, {h['records_per_s']} records/s")
    print(f"in process (one thread, same batches): p50 {p['p50_ms']} ms, p99 {p['p99_ms']} ms, "
          f"{p['records_per_s']} records/s; largest probability difference {diff:.2e}")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()

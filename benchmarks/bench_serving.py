"""Model server throughput and latency: requests/s, rows/s, p50 and p99 for single rows and batches of 100.

In a temporary TRACKING_HOME it trains a logistic regression on the bundled loan_approval data (one
trial), registers it as `loan` and approves it into production (or, with `--store` and `--model`, it
serves a model you already have in production). The server runs in a child process exactly as
`python -m tracking serve` runs it (`tracking.serving._app.serve`: uvicorn with its access log, every
request sampled into the inference log unless `--sample` says otherwise). A load generator of
`--clients` threads, each on one keep-alive `http.client` connection, posts for `--seconds` per batch
size; then the server is stopped (SIGINT, as Ctrl-C) and the benchmark checks that the inference log
counted every request it sent.

Run from the repo root with the project's venv:

    python benchmarks/bench_serving.py
    python benchmarks/bench_serving.py --seconds 20 --clients 16 --sample 0.1
    TRACKING_HOME=~/.tracking python benchmarks/bench_serving.py --store sqlite:///$HOME/.tracking/tracking.db --model loan
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class NotMeasured(SystemExit):
    """The server did not answer as the figures claim (errors, wrong answers, requests not logged): exit non-zero."""


@dataclass(frozen=True)
class Result:
    batch: int
    seconds: float
    latencies_ms: list[float]
    errors: int
    statuses: tuple[str, ...] = ()  # what the failed requests got (HTTP status or exception), a few

    def line(self) -> str:
        n = len(self.latencies_ms)
        ordered = sorted(self.latencies_ms) or [float("nan")]
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
        return (
            f"{self.batch:>5}  {n:>8}  {self.errors:>6}  {n / self.seconds:>9.0f}  {n * self.batch / self.seconds:>9.0f}"
            f"  {statistics.median(ordered):>8.2f}  {p99:>8.2f}"
        )


def prepare(home: Path) -> tuple[str, str]:
    """A store under `home` with `loan` v1 (logistic regression, C=10) in production; its URL and model name."""
    from tracking.governance._access import create_user
    from tracking.registry._models import register_version
    from tracking.registry._promotions import approve_promotion, request_promotion
    from tracking.runs._queries import list_runs
    from tracking.store._db import open_store
    from tracking.sweeps._sweeps import SweepSpec, create_sweep
    from tracking.sweeps._worker import run_worker

    url = f"sqlite:///{home / 'tracking.db'}"
    store = open_store(url, home=home)
    password = "bench-password-1"
    admin = create_user(store, None, "admin", "admin", password)
    scientist = create_user(store, admin, "scientist", "data_scientist", password)
    owner = create_user(store, admin, "owner", "product_owner", password)
    spec = SweepSpec(model="logistic_regression", task="loan_approval", space={"C": {"type": "categorical",
                     "choices": [10.0]}}, n_trials=1, sampler="grid", pruner="none", folds=3)  # fmt: skip
    sweep = create_sweep(store, spec, actor=scientist)
    run_worker(store, sweep.id)
    run = list_runs(store, sweep_id=sweep.id)[0]
    version = register_version(store, run.id, "loan", actor=scientist)
    request = request_promotion(store, version.id, "benchmark", actor=scientist)
    approve_promotion(store, request.id, "benchmark", actor=owner)
    store.dispose()
    return url, "loan"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(url: str, model: str, port: int, sample: float, env: dict[str, str]) -> subprocess.Popen:
    code = (
        "from tracking.store._db import open_store; from tracking.serving._app import serve; "
        f"serve(open_store({url!r}), {model!r}, port={port}, sample_rate={sample})"
    )
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)


def wait_healthy(port: int, server: subprocess.Popen, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with status {server.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            return json.loads(conn.getresponse().read())
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the server did not answer /health in time")


def check_answer(port: int, body: bytes, batch: int, model: str) -> None:
    """One request, untimed: the server answers 200 with one prediction per row from `model`, else stop here."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        text = response.read().decode(errors="replace")
    finally:
        conn.close()
    answer = json.loads(text) if response.status == 200 else {}
    if len(answer.get("predictions", [])) != batch or answer.get("model") != model:
        raise NotMeasured(f"POST /predict with {batch} rows answered {response.status} {text[:200]!r}, not "
                          f"{batch} predictions of {model}: there is nothing to time.")  # fmt: skip


def check_load(result: Result) -> None:
    """Every request of a timed batch was answered 200: a figure that counts refusals as answers says nothing."""
    if result.errors or not result.latencies_ms:
        raise NotMeasured(f"{result.errors} of {result.errors + len(result.latencies_ms)} requests with "
                          f"{result.batch} rows failed ({', '.join(result.statuses)}), so no figure is printed.")  # fmt: skip


def load(port: int, body: bytes, batch: int, clients: int, seconds: float) -> Result:
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    statuses: set[str] = set()
    start = threading.Barrier(clients + 1)
    deadline = [0.0]

    def client(number: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Content-Type": "application/json"}
        start.wait()
        while (now := time.perf_counter()) < deadline[0]:
            try:
                conn.request("POST", "/predict", body, headers)
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException) as err:
                errors[number] += 1
                statuses.add(type(err).__name__)
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                continue
            if response.status == 200:
                latencies[number].append((time.perf_counter() - now) * 1000)
            else:
                errors[number] += 1
                statuses.add(f"HTTP {response.status}")
        conn.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    deadline[0] = began + seconds
    start.wait()
    for thread in threads:
        thread.join()
    latencies_ms = [x for part in latencies for x in part]
    return Result(batch, time.perf_counter() - began, latencies_ms, sum(errors), tuple(sorted(statuses))[:5])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="load per batch size (default 10)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent keep-alive connections (default 8)")
    parser.add_argument("--batches", default="1,100", help="rows per request, comma-separated (default 1,100)")
    parser.add_argument("--sample", type=float, default=1.0, help="the server's sample rate (default 1, as serve)")
    parser.add_argument("--store", help="serve from this store (with --model) instead of training one")
    parser.add_argument("--model", help="the registered model to serve from --store")
    args = parser.parse_args()
    if bool(args.store) != bool(args.model):
        parser.error("give --store and --model together")

    from tracking.production._inference import serving_series
    from tracking.registry._models import get_model
    from tracking.runs._datasets import load_task
    from tracking.store._db import open_store

    scratch = tempfile.TemporaryDirectory(prefix="bench-serving-")
    home = Path(os.environ.get("TRACKING_HOME", "~/.tracking")).expanduser() if args.store else Path(scratch.name)
    env = {**os.environ, "TRACKING_HOME": str(home), "PYTHONPATH": str(ROOT)}
    if args.store:
        url, model = args.store, args.model
    else:
        began = time.perf_counter()
        url, model = prepare(home)
        print(f"trained, registered and approved {model} v1 in {time.perf_counter() - began:.1f} s")
    rows = json.loads(load_task(task="loan_approval").X.head(100).to_json(orient="records"))
    store = open_store(url, home=home)
    model_id = get_model(store, model).id

    def counted() -> int:
        return sum(m.requests for m in serving_series(store, model_id))

    before, sent = counted(), 0
    port = free_port()
    server = start_server(url, model, port, args.sample, env)
    try:
        health = wait_healthy(port, server)
        if health.get("model") != model:
            raise NotMeasured(f"the server on port {port} serves {health.get('model')!r}, not {model!r}.")
        print(f"serving {health['model']} v{health['version']} on 127.0.0.1:{port} (uvicorn, 1 process), "
              f"sample rate {args.sample:g}, {args.clients} clients, {args.seconds:g} s per batch size")  # fmt: skip
        print(
            f"{'batch':>5}  {'requests':>8}  {'errors':>6}  {'req/s':>9}  {'rows/s':>9}  {'p50 ms':>8}  {'p99 ms':>8}"
        )
        for batch in (int(b) for b in args.batches.split(",")):
            body = json.dumps({"rows": (rows * (batch // len(rows) + 1))[:batch]}).encode()
            check_answer(port, body, batch, model)
            warm = load(port, body, batch, args.clients, min(1.0, args.seconds))  # not reported
            result = load(port, body, batch, args.clients, args.seconds)
            sent += 1 + sum(len(r.latencies_ms) + r.errors for r in (warm, result))
            check_load(warm)
            check_load(result)
            print(result.line(), flush=True)
    finally:
        server.send_signal(signal.SIGINT)  # as Ctrl-C: uvicorn shuts down and the last log entries are written
        server.wait(60)
    logged = counted() - before
    print(f"inference log: {logged} of the {sent} requests sent were counted (server exit status "
          f"{server.returncode})")  # fmt: skip
    store.dispose()
    scratch.cleanup()
    if logged != sent:  # every request is counted per minute, whatever the sample rate
        raise NotMeasured(f"the inference log counted {logged} of the {sent} requests sent: the served path "
                          "measured is not the one that counts every request.")  # fmt: skip


if __name__ == "__main__":
    main()

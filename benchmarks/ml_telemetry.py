"""Telemetry benchmark: the cost of serving telemetry per predict call, against the credit-score API.

Run by hand (not in the test suite):

    .venv/bin/python -m benchmarks.ml_telemetry [--calls 20000] [--requests 300]

In one run, on one process configured as production serving is (`PROMETHEUS_MULTIPROC_DIR`
set, so every value is a memory-mapped write):

1. A single-row `ml.runtime.predict` of the demo credit model (XGBoost, trained here) with
   telemetry on vs the same call inside `telemetry_disabled()`, in alternating blocks; medians of
   the per-call times, printed as the ratio on/off and the difference in microseconds.
2. The recorders alone, timed directly: `ml.telemetry.record_call` (what a prediction adds) and
   `core.telemetry.recording.http_request_record` (what the HTTP middleware adds per request).
3. The single-score API latency (POST /api/v1/finance/scores/, gunicorn, sequential requests),
   and the telemetry a scoring request pays (one prediction + one HTTP request record) as a share
   of it: the goal is at most 2 %.

Everything runs against a throw-away VAR_DIR (SQLite, media, artifacts) in a temp folder.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BLOCK = 500


def _per_call_us(fn: Callable[[], Any], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) / calls * 1e6


def predict_benchmark(version: Any, row: Any, calls: int) -> dict[str, float]:
    from core.telemetry.recording import telemetry_disabled
    from ml import runtime

    def call() -> None:
        runtime.predict(version, row)

    for _ in range(200):  # warm-up: model load, label lookups
        call()
    on, off = [], []
    for _ in range(max(1, calls // (2 * BLOCK))):
        on.append(_per_call_us(call, BLOCK))
        with telemetry_disabled():
            off.append(_per_call_us(call, BLOCK))
    return {"on_us": statistics.median(on), "off_us": statistics.median(off)}


def recorder_benchmark(version: Any, calls: int) -> dict[str, float]:
    from core.telemetry.recording import http_request_record
    from ml.telemetry import record_call

    def prediction() -> None:
        record_call(version, method="predict", inputs=1, ms=0.42, failed=False, device="cpu")

    def http() -> None:
        http_request_record(route="api/v1/finance/scores/", method="POST", status=200, seconds=0.004)

    record_us = statistics.median(_per_call_us(prediction, BLOCK) for _ in range(max(1, calls // BLOCK)))
    http_us = statistics.median(_per_call_us(http, BLOCK) for _ in range(max(1, calls // BLOCK)))
    return {"record_call_us": record_us, "http_record_us": http_us}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tessera-bench-") as tmp:
        var_dir = Path(tmp)
        # production-like: multiprocess values (set before prometheus_client is first imported)
        (var_dir / "prometheus").mkdir()
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(var_dir / "prometheus")
        os.environ["TELEMETRY_FLUSH_SECONDS"] = "10"
        from benchmarks.finance import _setup_django, _train, latency_benchmark

        _setup_django(var_dir)
        from apps.finance.scoring import credit_encoder
        from apps.finance.selectors import credit_version_get
        from core.telemetry.rollups import start_flusher
        from fixtures.finance_synthetic import generate_credit_applications

        start_flusher(role="bench")  # the rollups are written in the background, as in a server
        data_csv, target = var_dir / "synthetic.csv", "default"
        generate_credit_applications(20_000).to_csv(data_csv, index=False)
        _, actor = _train(data_csv, target)
        version = credit_version_get(org=actor.organization)
        import pandas as pd

        encoder = credit_encoder(version)
        frame = pd.read_csv(data_csv).head(1)
        row, _ = encoder.encode_frame(frame[encoder.names])

        predict = predict_benchmark(version, row, args.calls)
        recorders = recorder_benchmark(version, args.calls)
        latency = latency_benchmark(var_dir, actor, data_csv, target, args.requests)

    added_us = predict["on_us"] - predict["off_us"]
    per_request_us = recorders["record_call_us"] + recorders["http_record_us"]
    score_us = latency["score_p50_ms"] * 1000
    print(f"\n1. Single-row ml.runtime.predict, {args.calls} calls in blocks of {BLOCK} (medians per call)")
    print(f"   telemetry off   {predict['off_us']:8.1f} us")
    print(
        f"   telemetry on    {predict['on_us']:8.1f} us   ratio on/off {predict['on_us'] / predict['off_us']:.3f}x  "
        f"({added_us:+.1f} us)"
    )
    print("\n2. The recorders alone (multiprocess mode: memory-mapped values)")
    print(f"   ml.telemetry.record_call     {recorders['record_call_us']:6.1f} us per prediction")
    print(f"   http_request_record          {recorders['http_record_us']:6.1f} us per HTTP request")
    print(f"\n3. Single-score API latency over {int(latency['requests'])} sequential requests (gunicorn, 1 worker)")
    print(
        f"   POST /api/v1/finance/scores/  p50 {latency['score_p50_ms']:.2f} ms  p99 {latency['score_p99_ms']:.2f} ms"
    )
    print(
        f"   telemetry per scoring request (1 prediction + 1 HTTP record): {per_request_us:.1f} us = "
        f"{per_request_us / score_us:.2%} of the p50 (goal: <= 2 %); measured on predict: "
        f"{max(added_us, 0.0) + recorders['http_record_us']:.1f} us = "
        f"{(max(added_us, 0.0) + recorders['http_record_us']) / score_us:.2%}"
    )


if __name__ == "__main__":
    main()

"""Finance benchmark: our scoring paths vs raw XGBoost on the same rows and the same model.

Run by hand (not in the test suite):

    .venv/bin/python -m benchmarks.finance [--rows 100000] [--requests 1000]

1. Batch scoring of N rows: our engine (validate + encode with the version's recorded encoder,
   predict through `ml.runtime`, score + decide, reasons for review/decline rows) vs raw
   `booster.predict` on a DMatrix of the same rows; our engine with reasons for every row
   (`ml.runtime.explain`) vs raw `predict(pred_contribs=True)`; and the whole batch job (CSV
   parsing, N decision-log rows in SQLite, the results CSV) for reference.
2. Single-score API latency p50/p99 over sequential requests against a real gunicorn server,
   and the same for a trivial authenticated endpoint (GET /api/v1/finance/policy/) as the floor;
   the single-score overhead is the difference of the two p50s in milliseconds.

`--quick` runs a small version of both (10,000 rows, 200 requests) for a shared machine.

Everything runs against a throw-away VAR_DIR (SQLite, media, artifacts) in a temp folder.
The model is trained on the Taiwan credit data when `../shared/data` has it, else on
synthetic applications.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.http_server import gunicorn_server, timed_request
from benchmarks.timing import median_of

ROOT = Path(__file__).resolve().parents[1]
TAIWAN = ROOT.parent / "shared" / "data" / "credit_taiwan" / "taiwan_default_clean.csv"


def _setup_django(var_dir: Path) -> None:
    os.environ["VAR_DIR"] = str(var_dir)
    os.environ["DJANGO_ENV"] = "test"
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "true"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _train(frame_csv: Path, target: str) -> tuple[Any, Any]:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from apps.finance.services import dataset_create, training_start
    from core.jobs.runner import job_execute
    from core.tenancy.actors import Actor
    from core.tenancy.services import organization_create

    org = organization_create(slug="bench", name="Bench")[0]
    actor = Actor.system(org)
    upload = SimpleUploadedFile("train.csv", frame_csv.read_bytes(), content_type="text/csv")
    dataset = dataset_create(actor=actor, upload=upload, name="bench", target=target)
    run = training_start(actor=actor, dataset=dataset, model_name="credit-risk")
    job_execute(job_id=run.job_id)
    return org, actor


def batch_benchmark(rows: int, data_csv: Path, target: str, actor: Any) -> dict[str, float]:
    import numpy as np
    import pandas as pd
    import xgboost as xgb
    from django.core.files.uploadedfile import SimpleUploadedFile

    from apps.finance.batch_scoring import batch_create
    from apps.finance.scoring import credit_encoder, score_matrix
    from apps.finance.selectors import credit_version_get, policy_get, policy_snapshot
    from core.jobs.models import Job
    from ml.runtime import load_version

    version = credit_version_get(org=actor.organization)
    # The raw side only: the same booster our path reaches through `ml.runtime`.
    model = load_version(version).model
    encoder = credit_encoder(version)
    source = pd.read_csv(data_csv)
    frame = source.sample(n=rows, replace=True, random_state=0).reset_index(drop=True)
    features = frame[encoder.names]
    policy = policy_snapshot(policy_get(org=actor.organization))
    booster = model.booster
    all_numeric = not any(s.is_categorical for s in model.features)

    def raw_matrix() -> xgb.DMatrix:
        # Raw XGBoost from the same DataFrame (categoricals as pandas categories).
        data = (
            features
            if all_numeric
            else features.astype({s.name: "category" for s in model.features if s.is_categorical})
        )
        return xgb.DMatrix(data, enable_categorical=True, missing=np.nan)

    def raw_predict() -> None:
        booster.predict(raw_matrix())

    def raw_contribs() -> None:
        dm = raw_matrix()
        booster.predict(dm, output_margin=True)
        booster.predict(dm, pred_contribs=True)

    def ours_predict() -> None:
        matrix, _ = encoder.encode_frame(features)
        score_matrix(version, matrix, policy, reasons_needed=False)

    def ours_production() -> None:
        matrix, _ = encoder.encode_frame(features)
        score_matrix(version, matrix, policy)

    def ours_explain_all() -> None:
        matrix, _ = encoder.encode_frame(features)
        score_matrix(version, matrix, policy, explain_all=True)

    timings = {
        "raw_predict_s": median_of(raw_predict),
        "ours_engine_s": median_of(ours_predict),
        "raw_predict_contribs_s": median_of(raw_contribs, 3),
        "ours_engine_explain_all_s": median_of(ours_explain_all, 3),
        "ours_engine_adverse_reasons_s": median_of(ours_production, 3),
    }
    matrix, _ = encoder.encode_frame(features)
    scored = score_matrix(version, matrix, policy)
    timings["reason_rows_share"] = float(np.mean(scored.decisions != "approve"))

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "batch.csv"
        frame.drop(columns=[target], errors="ignore").to_csv(path, index=False)
        upload = SimpleUploadedFile("batch.csv", path.read_bytes(), content_type="text/csv")
        started = time.perf_counter()
        batch = batch_create(actor=actor, upload=upload)
        from core.jobs.runner import job_execute

        if Job.objects.get(pk=batch.job_id).status != "succeeded":
            job_execute(job_id=batch.job_id)
        timings["ours_batch_job_s"] = time.perf_counter() - started
        batch.refresh_from_db()
        assert batch.summary["scored"] == rows, batch.summary
    return timings


def latency_benchmark(var_dir: Path, actor: Any, data_csv: Path, target: str, requests: int) -> dict[str, float]:
    import numpy as np
    import pandas as pd

    from core.tenancy.services import api_key_create

    key = api_key_create(actor=actor, name="bench", scopes=("finance",)).raw_key
    frame = pd.read_csv(data_csv).drop(columns=[target]).head(requests)
    with gunicorn_server(var_dir, key, "/api/v1/finance/policy/") as port:
        bodies = []
        for i, row in frame.iterrows():
            features = {k: (None if v != v else (v.item() if hasattr(v, "item") else v)) for k, v in row.items()}
            features = {k: v for k, v in features.items() if k not in ("id", "application_id")}
            bodies.append(json.dumps({"application_id": f"lat-{i}", "features": features}).encode())
        for body in bodies[:50]:  # warm-up: model load, connections
            timed_request(port, "POST", "/api/v1/finance/scores/", key, body)
        score_ms, floor_ms = [], []
        for body in bodies:
            status, ms = timed_request(port, "POST", "/api/v1/finance/scores/", key, body)
            assert status == 200, status
            score_ms.append(ms)
        for _ in range(len(bodies)):
            status, ms = timed_request(port, "GET", "/api/v1/finance/policy/", key)
            assert status == 200, status
            floor_ms.append(ms)
    return {
        "score_p50_ms": float(np.percentile(score_ms, 50)),
        "score_p99_ms": float(np.percentile(score_ms, 99)),
        "floor_p50_ms": float(np.percentile(floor_ms, 50)),
        "floor_p99_ms": float(np.percentile(floor_ms, 99)),
        "requests": float(len(score_ms)),
    }


def _print_batch(rows: int, batch: dict[str, float]) -> None:
    raw, raw_contribs = batch["raw_predict_s"], batch["raw_predict_contribs_s"]
    share = batch["reason_rows_share"]
    lines = [
        f"\n1. Batch scoring of {rows} rows (medians of 3 runs; ratio = raw time / our time, >= 0.7 is the target)",
        f"   raw xgboost predict              {raw:8.3f}s  ({rows / raw:,.0f} rows/s)",
        f"   ours: validate+predict+decide    {batch['ours_engine_s']:8.3f}s  "
        f"ratio {raw / batch['ours_engine_s']:.2f}x (no reasons: like for like)",
        f"   raw xgboost predict+contribs     {raw_contribs:8.3f}s",
        f"   ours: + reasons for every row    {batch['ours_engine_explain_all_s']:8.3f}s  "
        f"ratio {raw_contribs / batch['ours_engine_explain_all_s']:.2f}x (like for like)",
        f"   ours: production engine          {batch['ours_engine_adverse_reasons_s']:8.3f}s  "
        f"ratio {raw_contribs / batch['ours_engine_adverse_reasons_s']:.2f}x raw predict+contribs "
        f"(reasons for the {share:.0%} review/decline rows only)",
        f"   ours: whole batch job            {batch['ours_batch_job_s']:8.3f}s  "
        f"({rows / batch['ours_batch_job_s']:,.0f} rows/s incl. CSV parse, {rows} decision-log rows in SQLite, "
        f"results CSV)",
    ]
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=1_000)
    parser.add_argument("--skip-batch", action="store_true", help="only the API latency part")
    parser.add_argument("--quick", action="store_true", help="10,000 rows and 200 requests (a shared machine)")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.requests = 10_000, 200
    with tempfile.TemporaryDirectory(prefix="tessera-bench-") as tmp:
        var_dir = Path(tmp)
        _setup_django(var_dir)
        if TAIWAN.exists():
            data_csv, target, label = TAIWAN, "default", "Taiwan credit (30,000 rows, 23 features)"
        else:
            from fixtures.finance_synthetic import generate_credit_applications

            data_csv, target, label = var_dir / "synthetic.csv", "default", "synthetic applications"
            generate_credit_applications(20_000).to_csv(data_csv, index=False)
        print(f"Model trained on {label}")
        _, actor = _train(data_csv, target)
        if not args.skip_batch:
            _print_batch(args.rows, batch_benchmark(args.rows, data_csv, target, actor))
        latency = latency_benchmark(var_dir, actor, data_csv, target, args.requests)
        print(f"\n2. Single-score API latency over {int(latency['requests'])} sequential requests (gunicorn, 1 worker)")
        print(
            f"   POST /api/v1/finance/scores/  p50 {latency['score_p50_ms']:.2f} ms  "
            f"p99 {latency['score_p99_ms']:.2f} ms"
        )
        print(
            f"   GET  /api/v1/finance/policy/  p50 {latency['floor_p50_ms']:.2f} ms  "
            f"p99 {latency['floor_p99_ms']:.2f} ms (floor)"
        )
        print(
            f"   single-score overhead over the floor: p50 "
            f"{latency['score_p50_ms'] - latency['floor_p50_ms']:+.2f} ms (target: within 3 ms)"
        )


if __name__ == "__main__":
    main()

"""Finance at scale: a 150,000 x 300 credit CSV through upload (streaming profile) and training.

Run by hand (not in the test suite):

    .venv/bin/python -m benchmarks.finance_scale [--rows 150000] [--columns 300]

The file is generated in a child process (so this process's peak memory is ours alone): the
synthetic applications of `fixtures/finance_synthetic.py` widened with numeric and categorical
bureau-style attributes (some with missing values). Then, in one run and on the same file:

1. upload: `dataset_create` (sniff, one streaming profiling pass, sha256, copy to storage) vs
   raw `pandas.read_csv` of the same file, with this process's peak RSS after each;
2. training: the `finance.credit_xgboost` training job (load the matrix, stratified split,
   early-stopped XGBoost, logistic baseline, metrics, model card) vs raw `xgboost.train` with
   the same rounds on the same matrix.

Ratios are raw time / our time (our path does more work than the raw call: it is a reference,
not a like-for-like race). Everything runs against a throw-away VAR_DIR in a temp folder.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.finance import _setup_django


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def _write_wide_csv(path: str, rows: int, columns: int) -> None:
    """`rows` synthetic applications with `columns` columns in all, written in chunks."""
    import numpy as np
    import pandas as pd

    from fixtures.finance_synthetic import generate_credit_applications

    chunk = 25_000
    with open(path, "w", newline="") as handle:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            frame = generate_credit_applications(n, seed=start // chunk)
            rng = np.random.default_rng(1000 + start // chunk)
            extra: dict[str, Any] = {}
            for j in range(columns - frame.shape[1]):
                if j % 5 == 4:  # a categorical attribute with a handful of codes
                    extra[f"attr_{j:03d}"] = rng.choice(["A", "B", "C", "D", "E"], n)
                else:
                    values = np.round(rng.normal(0, 1, n), 3)
                    values[rng.random(n) < 0.02] = np.nan
                    extra[f"attr_{j:03d}"] = values
            wide = pd.concat([frame, pd.DataFrame(extra, index=frame.index)], axis=1)
            wide.to_csv(handle, index=False, header=start == 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=150_000)
    parser.add_argument("--columns", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=200, help="boosting rounds (early stopping may stop sooner)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        var_dir = Path(tmp) / "var"
        var_dir.mkdir()
        csv_path = Path(tmp) / "wide.csv"
        child = multiprocessing.get_context("spawn").Process(
            target=_write_wide_csv, args=(str(csv_path), args.rows, args.columns)
        )
        child.start()
        child.join()
        assert child.exitcode == 0, "generating the CSV failed"
        size_mb = csv_path.stat().st_size / 1e6
        print(f"File: {args.rows:,} rows x {args.columns} columns, {size_mb:,.0f} MB")

        _setup_django(var_dir)
        from django.core.files.uploadedfile import TemporaryUploadedFile

        from apps.finance.services import dataset_create, training_start
        from core.jobs.runner import job_execute
        from core.tenancy.actors import Actor
        from core.tenancy.services import organization_create

        org, _ = organization_create(slug="scale", name="Scale")
        actor = Actor.system(org)
        rss_start = _peak_rss_mb()

        # 1. upload
        upload = TemporaryUploadedFile("wide.csv", "text/csv", csv_path.stat().st_size, "utf-8")
        with csv_path.open("rb") as source:
            while block := source.read(1 << 20):
                upload.write(block)
        upload.seek(0)
        started = time.perf_counter()
        dataset = dataset_create(actor=actor, upload=upload, name="wide", target="default")
        ours_upload_s = time.perf_counter() - started
        upload.close()
        rss_upload = _peak_rss_mb()
        features = sum(1 for c in dataset.schema if c["role"] == "feature")

        # 2. training (inline, as a worker would run it)
        started = time.perf_counter()
        run = training_start(
            actor=actor, dataset=dataset, model_name="wide", params={"n_estimators": args.rounds, "learning_rate": 0.1}
        )
        job_execute(job_id=run.job_id)
        ours_train_s = time.perf_counter() - started
        run.refresh_from_db()
        run.job.refresh_from_db()
        assert run.job.status == "succeeded", run.job.error
        rss_train = _peak_rss_mb()
        from ml.models import ModelVersion

        version = ModelVersion.objects.get(training_run=run)
        rounds = int(version.metrics.get("rounds") or args.rounds)

        # the raw libraries on the same file / matrix (after ours, so their memory does not hide ours)
        raw = _raw_reference(csv_path, rounds=rounds)

        print(f"\n1. Upload ({features} features inferred, {dataset.rows:,} rows)")
        print(
            f"   ours: dataset_create (sniff + streaming profile + sha256 + store)  {ours_upload_s:7.2f}s  "
            f"peak RSS {rss_upload:,.0f} MB (at start {rss_start:,.0f} MB)"
        )
        print(
            f"   raw:  pandas.read_csv                                            {raw['read_s']:7.2f}s  "
            f"ratio {raw['read_s'] / ours_upload_s:.2f}x  (+{raw['read_mb']:,.0f} MB for the frame alone)"
        )
        print(f"\n2. Training ({rounds} rounds; held-out ROC AUC {version.metrics.get('roc_auc', float('nan')):.4f})")
        print(
            f"   ours: training job (matrix, split, XGBoost, baseline, metrics)   {ours_train_s:7.2f}s  "
            f"peak RSS {rss_train:,.0f} MB"
        )
        print(
            f"   raw:  xgboost.train, {rounds} rounds on the same matrix             {raw['train_s']:7.2f}s  "
            f"ratio {raw['train_s'] / ours_train_s:.2f}x"
        )


def _raw_reference(csv_path: Path, *, rounds: int) -> dict[str, Any]:
    import pandas as pd
    import xgboost as xgb

    before = _peak_rss_mb()
    started = time.perf_counter()
    frame = pd.read_csv(csv_path)
    read_s = time.perf_counter() - started
    read_mb = max(_peak_rss_mb() - before, frame.memory_usage(deep=True).sum() / 1e6)
    y = (frame.pop("default").astype(str) == "1").astype(int).to_numpy()
    frame = frame.drop(columns=["application_id"])
    for name in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[name]):
            frame[name] = frame[name].astype("category")
    started = time.perf_counter()
    matrix = xgb.DMatrix(frame, label=y, enable_categorical=True)
    xgb.train(
        {"objective": "binary:logistic", "eta": 0.1, "max_depth": 4, "tree_method": "hist", "max_cat_to_onehot": 4},
        matrix,
        num_boost_round=rounds,
    )
    return {"read_s": read_s, "read_mb": read_mb, "train_s": time.perf_counter() - started}


if __name__ == "__main__":
    main()

"""Training an image classifier on real parts: PostgreSQL, Redis and a real prefork Celery worker.

Real MedNIST images are stored in the archive by this (web) process; the worker, on the
`training` queue, resolves the labels, reads every file from the shared storage, trains, and
registers the version, whose progress (loss and validation AUC per epoch) the API shows; this
process then serves predictions with the artifact the worker wrote.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.integration.test_domain_jobs_real_worker import _poll_job
from tests.medical.classifier_fixtures import archive_store, mednist_files, series_labels
from tests.realservices import RealWorker

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.mark.timeout(300)
def test_a_classifier_trains_on_the_worker_and_serves_here(
    real_worker: RealWorker, api: Any, org: Any, tmp_path: Any
) -> None:
    # given: 8 real images of each of two classes in the archive
    from apps.medical.imaging import Preprocessing, dataset_inputs
    from ml.runtime import predict, preprocessor
    from ml.selectors import model_version_get

    files = mednist_files(8, ("CXR", "Hand"))
    instances = archive_store(org, [path for path, _ in files], tmp_path / "incoming")
    labels = series_labels(instances, [label for _, label in files])
    body = {
        "model": "worker-cxr",
        "labels": labels,
        "architecture": "resnet18",
        "input_size": 32,
        "epochs": 2,
        "batch_size": 4,
        "promote": True,
    }

    # when: training is requested through the API and the worker runs it
    started = api.post("/api/v1/medical/training-runs/", body, format="json")
    assert started.status_code == 202, started.content
    job, _seen = _poll_job(api, started.json()["job"]["url"], real_worker, timeout=240)

    # then: a version with its metrics and per-epoch progress
    assert job["status"] == "succeeded", (job, real_worker.logs()[-6000:])
    assert job["kind"] == "ml.train" and job["domain"] == "medical"
    run = api.get(f"/api/v1/medical/training-runs/{started.json()['id']}/").json()
    assert run["version"]["number"] == 1
    assert [entry["epoch"] for entry in run["live_metrics"]] == [1, 2]
    version = api.get("/api/v1/medical/models/worker-cxr/versions/1/").json()
    assert version["metrics"]["split"]["patients_in_both"] == 0
    assert version["aliases"] == ["production"]

    # and this process serves it from the worker's artifact
    import pydicom

    served = model_version_get(org=org, name="worker-cxr", number=1)
    recorded: Preprocessing = preprocessor(served)
    inputs = dataset_inputs(pydicom.dcmread(files[0][0]), recorded)
    probabilities = np.asarray(predict(served, inputs).outputs)
    assert probabilities.shape == (1, 2) and abs(probabilities.sum() - 1) < 1e-6

"""Training classifiers through `POST /api/v1/medical/training-runs/` on real images (MedNIST).

Jobs run inline (eager) on commit, so a 202 is followed by the finished run.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.conftest import assert_error
from tests.medical.classifier_fixtures import (
    archive_store,
    instance_labels,
    mednist_files,
    run_detail,
    series_labels,
    train_request,
)

pytestmark = pytest.mark.django_db(transaction=True)

CLASSES = ("AbdomenCT", "CXR", "Hand")
FAST = {
    "architecture": "resnet18",
    "input_size": 32,
    "epochs": 2,
    "batch_size": 8,
    "seed": 3,
    "validation_fraction": 0.3,
}


@pytest.fixture
def stored(org: Any, tmp_path: Any) -> tuple[list[Any], list[str]]:
    torch.set_num_threads(1)
    files = mednist_files(10, CLASSES)
    instances = archive_store(org, [path for path, _ in files], tmp_path / "incoming")
    return instances, [label for _, label in files]


def _trained(api: Any, stored: tuple[list[Any], list[str]], **extra: Any) -> dict[str, Any]:
    instances, labels = stored
    response = train_request(
        api, {"model": "chest-triage", "labels": series_labels(instances, labels), **FAST, **extra}
    )
    assert response.status_code == 202, response.content
    run = run_detail(api, response.json()["id"])
    assert run["status"] == "succeeded", run["job"]
    return run


def test_train_split_metrics_card_progress_and_serving(api, org, stored):
    # given stored images labelled per series
    from apps.medical.training_data import classifier_training_data
    from ml.kinds import TrainingRequest
    from ml.models import TrainingRun
    from ml.runtime import explain, load_version, predict, preprocessor
    from ml.selectors import model_version_get

    # when training through the API
    run = _trained(api, stored, promote=True)
    # then the run reports every epoch with loss and validation AUC
    assert run["version"]["number"] == 1
    assert run["classes"] == sorted(CLASSES)
    assert [entry["epoch"] for entry in run["live_metrics"]] == [1, 2]
    for entry in run["live_metrics"]:
        assert entry["loss"] > 0 and "val_auc" in entry and "val_accuracy" in entry
    version = api.get("/api/v1/medical/models/chest-triage/versions/1/").json()
    metrics = version["metrics"]
    assert 0 <= metrics["accuracy"] <= 1 and metrics["roc_auc"] is not None
    assert set(metrics["roc_auc_per_class"]) == set(CLASSES)
    for name in CLASSES:
        assert {"sensitivity", "specificity", "support"} <= set(metrics["per_class"][name])
    matrix = metrics["confusion_matrix"]
    assert matrix["labels"] == sorted(CLASSES)
    assert np.asarray(matrix["matrix"]).sum() == metrics["validation_images"]
    assert len(metrics["calibration"]["bins"]) == 10
    assert sum(row["count"] for row in metrics["calibration"]["bins"]) == metrics["validation_images"]
    split = metrics["split"]
    assert split["method"] == "split by patient" and split["patients_in_both"] == 0
    assert split["train"]["images"] + split["validation"]["images"] == 30
    card = version["model_card"]
    assert card["intended_use"] and card["limits"]
    assert card["training_data"]["images_per_class"] == dict.fromkeys(CLASSES, 10)
    assert card["training_data"]["modalities"] == {"OT": 30}
    assert version["input_schema"]["classes"] == sorted(CLASSES)
    assert version["input_schema"]["preprocessing"]["input_size"] == 32
    assert version["aliases"] == ["production"]

    # and the split really is by patient: the loader's sides share no Patient ID
    stored_run = TrainingRun.objects.get(pk=run["id"])
    data = classifier_training_data(
        TrainingRequest(organization=org, data=stored_run.data, params=stored_run.params, scratch=None)  # type: ignore[arg-type]
    )
    assert not set(data.train.patients) & set(data.validation.patients)
    assert all(patient.startswith("MEDNIST-") for patient in data.train.patients)
    assert len(data.validation.labels) == split["validation"]["images"]

    # and the runtime's probabilities equal raw torch inference on the same weights and images
    from monai.networks.nets import resnet18

    model_version = model_version_get(org=org, name="chest-triage", number=1)
    loaded = load_version(model_version)
    network = resnet18(spatial_dims=2, n_input_channels=1, num_classes=3)
    network.load_state_dict(torch.load(loaded.directory / "model.pt", weights_only=True))
    network.eval()
    inputs = list(data.validation.inputs)
    served = np.asarray(predict(model_version, inputs).outputs)
    with torch.no_grad():
        raw = torch.softmax(network(torch.from_numpy(data.validation.inputs)), dim=1).numpy()
    np.testing.assert_allclose(served, raw, atol=1e-5)
    assert preprocessor(model_version).input_size == 32

    # and Grad-CAM runs under the runtime's inference context: (S, S) float32 in [0, 1]
    heatmaps = explain(model_version, inputs[:3], classes=[0, 1, 2]).outputs
    assert len(heatmaps) == 3
    for heat in heatmaps:
        assert heat.shape == (32, 32) and heat.dtype == np.float32
        assert heat.min() >= 0.0 and heat.max() <= 1.0
    assert len(explain(model_version, inputs[:2]).outputs) == 2  # default: the predicted class


def test_fine_tuning_from_an_earlier_version(api, stored):
    # given version 1
    _trained(api, stored)
    instances, labels = stored
    # when fine-tuning from it (architecture and preprocessing come from the parent)
    response = train_request(
        api,
        {
            "model": "chest-triage",
            "labels": series_labels(instances, labels),
            "epochs": 1,
            "batch_size": 8,
            "base_version": 1,
        },
    )
    # then
    assert response.status_code == 202, response.content
    run = run_detail(api, response.json()["id"])
    assert run["status"] == "succeeded", run["job"]
    assert run["parent_version"] == 1 and run["version"]["number"] == 2
    version = api.get("/api/v1/medical/models/chest-triage/versions/2/").json()
    assert version["parent"] == 1
    assert version["input_schema"]["architecture"] == "resnet18"
    assert version["model_card"]["fine_tuned_from_parent"] is True

    # a fine-tuning run must keep the classes
    two = [item for item in series_labels(instances, labels) if item["label"] != "Hand"]
    error = assert_error(
        train_request(api, {"model": "chest-triage", "labels": two, "base_version": 1}), 400, "classes_differ"
    )
    assert "classes" in error["fields"]
    # and start from a version of the same model
    assert_error(
        train_request(api, {"model": "other", "labels": series_labels(instances, labels), "base_version": 1}), 400
    )
    assert_error(train_request(api, {"model": "chest-triage", "labels": two, "base_version": 9}), 400)


def test_labels_as_a_csv_upload(api, stored):
    # given a CSV of instance labels
    instances, labels = stored
    lines = ["uid,label", *(f"{i.sop_instance_uid},{label}" for i, label in zip(instances, labels, strict=True))]
    upload = SimpleUploadedFile("labels.csv", ("\ufeff" + "\n".join(lines)).encode(), content_type="text/csv")
    # when
    response = api.post(
        "/api/v1/medical/training-runs/",
        {"model": "from-csv", "labels_file": upload, "classes": ["Hand", "CXR", "AbdomenCT"], **FAST},
        format="multipart",
    )
    # then
    assert response.status_code == 202, response.content
    run = run_detail(api, response.json()["id"])
    assert run["status"] == "succeeded", run["job"]
    assert run["classes"] == ["Hand", "CXR", "AbdomenCT"] and run["labels"] == 30


def _csv(text: str) -> SimpleUploadedFile:
    return SimpleUploadedFile("labels.csv", text.encode(), content_type="text/csv")


def test_every_bad_input_is_a_400_before_anything_is_stored(api, org, stored, make_org, tmp_path):
    from ml.models import RegisteredModel, TrainingRun

    instances, labels = stored
    good = series_labels(instances, labels)
    one_per_instance = instance_labels(instances, labels)  # ordered by class: the last ten are Hand
    not_hand = [item for item in good if item["label"] != "Hand"]
    RegisteredModel.objects.create(organization=org, name="credit", kind="finance.credit_xgboost")
    cases: list[tuple[dict[str, Any], int, str | None, str]] = [
        ({"model": "m", "labels": [*good, {"uid": "1.2.3.999", "label": "CXR"}]}, 400, "unknown_uids", "labels"),
        ({"model": "m", "labels": [{"uid": "not a uid", "label": "CXR"}]}, 400, None, "labels"),
        ({"model": "m", "labels": []}, 400, None, "labels"),
        ({"model": "m"}, 400, None, "labels"),
        ({"model": "m", "labels": [good[0]]}, 400, "too_few_classes", "classes"),
        ({"model": "m", "labels": good, "classes": [*CLASSES, "HeadCT"]}, 400, "empty_class", "labels"),
        ({"model": "m", "labels": good, "classes": ["CXR", "Hand"]}, 400, "label_not_in_classes", "labels"),
        ({"model": "m", "labels": good, "classes": ["CXR", "CXR", "Hand", "AbdomenCT"]}, 400, None, "classes"),
        (
            {"model": "m", "labels": [*good, {"uid": instances[0].sop_instance_uid, "label": "Hand"}]},
            400,
            "conflicting_labels",
            "labels",
        ),
        ({"model": "m", "labels": [*one_per_instance[:-9], *not_hand]}, 400, "too_few_patients", "labels"),
        ({"model": "m", "labels": good, "epochs": 10_000}, 400, None, "epochs"),
        ({"model": "m", "labels": good, "epochs": 0}, 400, None, "epochs"),
        ({"model": "m", "labels": good, "input_size": 4096}, 400, None, "input_size"),
        ({"model": "m", "labels": good, "batch_size": 100_000}, 400, None, "batch_size"),
        ({"model": "m", "labels": good, "learning_rate": 5}, 400, None, "learning_rate"),
        ({"model": "m", "labels": good, "architecture": "vit-huge"}, 400, None, "architecture"),
        ({"model": "m", "labels": good, "window_center": 40}, 400, None, "window_width"),
        ({"model": "m", "labels": good, "validation_fraction": 0.9}, 400, None, "validation_fraction"),
        ({"model": "Bad Name!", "labels": good}, 400, None, "model"),
        ({"model": "credit", "labels": good}, 409, "kind_mismatch", "model"),
        ({"model": "m", "labels": good, "base_version": 1}, 400, "unknown_base_version", "base_version"),
    ]
    for body, status, code, field in cases:
        error = assert_error(train_request(api, body), status, code)
        assert field in {name.split(".")[0] for name in error["fields"]}, (body, error)
    unknown = assert_error(
        train_request(api, {"model": "m", "labels": [*good, {"uid": "1.2.3.999", "label": "CXR"}]}), 400
    )
    assert any("1.2.3.999" in message for message in unknown["fields"]["labels"])
    for text, field in (("uid;label\n1.2.3,CXR\n", "labels_file"), ("uid,label\n1.2.3\n", "labels_file")):
        response = api.post(
            "/api/v1/medical/training-runs/", {"model": "m", "labels_file": _csv(text)}, format="multipart"
        )
        assert field in assert_error(response, 400)["fields"]
    bad_bytes = SimpleUploadedFile("labels.csv", b"\xff\xfe\x00bad", content_type="text/csv")
    response = api.post("/api/v1/medical/training-runs/", {"model": "m", "labels_file": bad_bytes}, format="multipart")
    assert_error(response, 400)
    assert not TrainingRun.objects.exists()
    assert not RegisteredModel.objects.filter(name="m").exists()


def test_tenancy(api, org, other_org, other_api, stored, api_client_for, client_for, tmp_path):
    from ml.models import TrainingRun

    instances, labels = stored
    good = series_labels(instances, labels)
    # another organization's UIDs are unknown to it
    error = assert_error(train_request(other_api, {"model": "m", "labels": good, **FAST}), 400, "unknown_uids")
    assert len(error["fields"]["labels"]) == len(good)
    # a run of another organization is not found
    run = _trained(api, stored)
    assert_error(other_api.get(f"/api/v1/medical/training-runs/{run['id']}/"), 404)
    assert_error(other_api.get("/api/v1/medical/models/chest-triage/"), 404)
    assert other_api.get("/api/v1/medical/models/").json()["count"] == 0
    assert api.get("/api/v1/medical/models/").json()["results"][0]["name"] == "chest-triage"
    # a key without the medical scope is refused
    finance = api_client_for(org, scopes=("finance",))
    assert_error(finance.post("/api/v1/medical/training-runs/", {"model": "m", "labels": good}, format="json"), 403)
    assert_error(finance.get(f"/api/v1/medical/training-runs/{run['id']}/"), 403)
    # promoting on creation needs the registry's `ml` scope; training alone needs `medical`
    medical_only = api_client_for(org, scopes=("medical",))
    assert_error(train_request(medical_only, {"model": "m", "labels": good, **FAST, "promote": True}), 403)
    # a clinician (not an org admin) cannot train from the portal session
    clinician = client_for(org, role="clinician")
    response = clinician.post(
        "/api/v1/medical/training-runs/", {"model": "m", "labels": good}, content_type="application/json"
    )
    assert_error(response, 403)
    assert TrainingRun.objects.count() == 1
    # a finance run is not a medical run
    finance_run = TrainingRun.objects.get(pk=run["id"])
    TrainingRun.objects.filter(pk=finance_run.pk).update(kind="finance.credit_xgboost")
    assert_error(api.get(f"/api/v1/medical/training-runs/{run['id']}/"), 404)

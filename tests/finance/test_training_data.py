"""The finance training-data loader: a run's dataset reference becomes a `CreditTrainingData`,
and the credit kind trains from that object alone (no ORM query, no stored file)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xgboost as xgb
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.finance.choices import MODEL_KIND
from apps.finance.models import CreditDataset
from apps.finance.scorecard import PolicySnapshot
from apps.finance.services import dataset_create, dataset_schema_update
from apps.finance.training_data import CreditTrainingData, DatasetSummary, credit_training_data
from core.errors import NotFound
from core.tenancy.actors import Actor
from ml.kinds import TrainingRequest, get_kind, report_nothing, training_data_load
from tests.finance.conftest import FAST_PARAMS

pytestmark = pytest.mark.django_db


def _dataset(org: Any, frame: Any) -> tuple[CreditDataset, bytes]:
    content = frame.to_csv(index=False).encode()
    upload = SimpleUploadedFile("apps.csv", content, content_type="text/csv")
    dataset = dataset_create(actor=Actor.system(org), upload=upload, name="apps", target="default")
    return dataset, content


def _request(org: Any, dataset: CreditDataset, scratch: Path, **data: Any) -> TrainingRequest:
    return TrainingRequest(organization=org, data={"dataset_id": dataset.pk, **data}, params={}, scratch=scratch)


def test_the_registered_loader_materialises_a_runs_dataset(org, credit_frame, tmp_path):
    # given a stored dataset whose analyst excluded `age`, and a run's reference to it with a policy
    dataset, content = _dataset(org, credit_frame)
    dataset = dataset_schema_update(
        actor=Actor.system(org), dataset=dataset, columns=[{"name": "age", "role": "excluded"}]
    )
    policy = PolicySnapshot(approve_min_score=610, decline_below_score=520)
    # when ml asks the loader registered for the credit kind
    data = training_data_load(MODEL_KIND, _request(org, dataset, tmp_path, policy=policy.as_dict()))
    # then it gets the encoded matrix, the labels and what the version records about its data
    assert isinstance(data, CreditTrainingData)
    features = [c["name"] for c in dataset.schema if c["role"] == "feature"]
    assert [c["name"] for c in data.columns] == features and "age" not in features
    assert data.matrix.shape == (len(credit_frame), len(features)) and data.matrix.dtype == np.float32
    column = features.index("credit_utilization")
    expected = credit_frame["credit_utilization"].to_numpy(dtype=np.float32)
    np.testing.assert_allclose(data.matrix[:, column], expected, equal_nan=True)
    np.testing.assert_array_equal(data.labels, (credit_frame["default"] == "1").to_numpy(dtype=np.int8))
    assert {"age", "application_id"} <= set(data.excluded) and "default" not in data.excluded
    assert "default" in data.not_features and not set(features) & set(data.not_features)
    assert data.dataset == DatasetSummary(
        id=dataset.pk,
        name="apps",
        rows=len(credit_frame),
        target="default",
        positive_label="1",
        sha256=hashlib.sha256(content).hexdigest(),
    )
    assert data.policy == policy


def test_another_organizations_dataset_is_not_found(org, other_org, credit_frame, tmp_path):
    # given acme's dataset
    dataset, _ = _dataset(org, credit_frame)
    # when a run of globex names it, then
    with pytest.raises(NotFound):
        credit_training_data(_request(other_org, dataset, tmp_path))


def test_the_kind_trains_from_the_materialised_data_alone(org, credit_frame, tmp_path, django_assert_num_queries):
    # given the materialised data, then the dataset's row and stored file gone
    dataset, content = _dataset(org, credit_frame)
    data = credit_training_data(_request(org, dataset, tmp_path))
    default_storage.delete(dataset.file_path)
    dataset.delete()
    kind = get_kind(MODEL_KIND)
    # when the kind trains: not one query
    with django_assert_num_queries(0):
        trained = kind.train(data=data, params=FAST_PARAMS, report=report_nothing)
    # then the version records the data from the summary
    names = [c["name"] for c in data.columns]
    fingerprint = {"file": hashlib.sha256(content).hexdigest(), "features": names, "target": "default", "pos": "1"}
    assert trained.data_fingerprint == hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()
    assert trained.input_schema["dataset_id"] == data.dataset.id
    assert trained.input_schema["ignored"] == list(data.not_features)
    assert trained.model_card["data"]["dataset"] == "apps" and trained.model_card["data"]["rows"] == len(credit_frame)
    assert trained.metrics["roc_auc"] > 0.6
    # and serving gives XGBoost's own margins (minus the prior shift) and contributions
    model, rows = trained.model, data.matrix[:7]
    raw = model.booster.predict(
        xgb.DMatrix(rows, feature_names=names, feature_types=model.feature_types, enable_categorical=True),
        pred_contribs=True,
    )
    as_rows = list(rows)  # any sequence of encoded rows, as the runtime may hand them over
    np.testing.assert_allclose(kind.predict(model, as_rows), raw.sum(axis=1) - model.log_odds_shift, atol=1e-4)
    np.testing.assert_allclose(kind.explain(model, as_rows), raw[:, :-1], atol=1e-5)
    assert kind.preprocessor(model).names == names

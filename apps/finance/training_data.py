"""The finance training-data loader: a run's dataset reference becomes what the credit kind trains on.

`ml` calls `credit_training_data(request)` (registered in `FinanceConfig.ready()`) before the
kind's `train`, so the kind never touches the ORM or storage: it receives a `CreditTrainingData`
with the encoded matrix, the labels, the feature columns and everything the version records
about its data (fingerprint inputs, model-card facts, the policy at training time).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np
from django.core.files.storage import default_storage

from apps.finance.choices import ColumnRole
from apps.finance.csv_ingest import _canonical, read_chunks, sniff_format
from apps.finance.feature_encoding import FeatureEncoder, FeatureSpec
from apps.finance.scorecard import PolicySnapshot
from apps.finance.selectors import dataset_get
from ml.kinds import TrainingRequest


@dataclass(frozen=True)
class DatasetSummary:
    """What a version records about the dataset it was trained on (model card, fingerprint, input schema)."""

    id: int
    name: str
    rows: int
    target: str
    positive_label: str
    sha256: str


@dataclass
class CreditTrainingData:
    """A credit training run's materialised data, as the `finance.credit_xgboost` kind receives it.

    Attributes:
        matrix: (n, n_features) float32, NaN = missing, encoded with `columns` in that order.
        labels: (n,) int8, 1 = default; rows without a target value are left out.
        columns: the dataset's feature columns (schema dicts: name, type, categories, bounds,
            description, reason code), in model order.
        excluded: columns the analyst excluded (ids, protected characteristics): accepted and
            ignored when a client sends them with an application.
        not_features: every column that is not a feature (the excluded ones and the target), in
            file order, as the version's input schema lists them.
        dataset: the dataset's identity and sha256 (for the fingerprint and the model card).
        policy: the credit policy in force when training started (approval/bad rates reported).
    """

    matrix: np.ndarray
    labels: np.ndarray
    columns: list[dict[str, Any]]
    dataset: DatasetSummary
    excluded: tuple[str, ...] = ()
    not_features: tuple[str, ...] = ()
    policy: PolicySnapshot = field(default_factory=PolicySnapshot)


def credit_training_data(request: TrainingRequest) -> CreditTrainingData:
    """Materialise a credit run's `{"dataset_id", "policy"}` reference (scoped to the run's organization).

    Raises:
        NotFound: the dataset is gone or belongs to another organization.
    """
    dataset = dataset_get(org=request.organization, dataset_id=request.data["dataset_id"])
    policy = _policy(request.data.get("policy"))
    columns = [dict(c) for c in dataset.schema if c["role"] == ColumnRole.FEATURE]
    encoder = FeatureEncoder([FeatureSpec.from_dict(c) for c in columns])
    with default_storage.open(dataset.file_path, "rb") as handle:
        matrix, labels = load_training_matrix(
            handle, encoder, rows=dataset.rows, target=dataset.target, positive_label=dataset.positive_label
        )
    return CreditTrainingData(
        matrix=matrix,
        labels=labels,
        columns=columns,
        excluded=tuple(c["name"] for c in dataset.schema if c["role"] == ColumnRole.EXCLUDED),
        not_features=tuple(c["name"] for c in dataset.schema if c["role"] != ColumnRole.FEATURE),
        dataset=DatasetSummary(
            id=dataset.pk,
            name=dataset.name,
            rows=dataset.rows,
            target=dataset.target,
            positive_label=dataset.positive_label,
            sha256=dataset.sha256,
        ),
        policy=policy,
    )


def _policy(data: Mapping[str, Any] | None) -> PolicySnapshot:
    return PolicySnapshot.from_dict(data) if data else PolicySnapshot()


def load_training_matrix(
    handle: IO[bytes], encoder: FeatureEncoder, *, rows: int, target: str, positive_label: str
) -> tuple[np.ndarray, np.ndarray]:
    """A stored dataset's feature matrix (float32, NaN = missing) and default flags (0/1).

    Rows without a target value are left out. Numeric columns are parsed as floats by the CSV
    reader directly, categorical ones are mapped to their schema codes chunk by chunk into a
    preallocated matrix, so memory stays at one float32 copy plus one chunk of text.

    Args:
        handle: the dataset's CSV, opened in binary mode.
        encoder: the encoder of the feature columns (model order).
        rows: the profiled row count (the matrix is preallocated to it).
        target: the target column; `positive_label` its value that means "defaulted".
    """
    positive = _canonical(positive_label)
    matrix = np.empty((rows, len(encoder.features)), dtype=np.float32)
    labels = np.empty(rows, dtype=np.int8)
    labelled = np.zeros(rows, dtype=bool)
    dtypes = {spec.name: ("float64" if not spec.is_categorical else str) for spec in encoder.features}
    dtypes[target] = str
    position = 0
    fmt = sniff_format(handle)
    for chunk in read_chunks(handle, fmt, usecols=[*encoder.names, target], dtype=dtypes):
        n = len(chunk)
        encoded, _ = encoder.encode_frame(chunk, strict=False)
        matrix[position : position + n] = encoded
        values = chunk[target]
        mapping = {value: _canonical(value) == positive for value in values.dropna().unique()}
        labels[position : position + n] = values.map(mapping).fillna(False).to_numpy(dtype=bool)
        labelled[position : position + n] = values.notna().to_numpy()
        position += n
    matrix, labels, labelled = matrix[:position], labels[:position], labelled[:position]
    if not labelled.all():
        matrix, labels = matrix[labelled], labels[labelled]
    return matrix, labels

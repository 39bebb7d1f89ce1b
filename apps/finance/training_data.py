"""Loading a stored credit dataset as a training matrix (chunked, one float32 copy)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from django.core.files.storage import default_storage

from apps.finance.csv_ingest import _canonical, read_chunks, sniff_format
from apps.finance.feature_encoding import FeatureEncoder

if TYPE_CHECKING:
    from apps.finance.models import CreditDataset


def load_training_matrix(dataset: CreditDataset, encoder: FeatureEncoder) -> tuple[np.ndarray, np.ndarray]:
    """The dataset's feature matrix (float32, NaN = missing) and default flags (0/1).

    Rows without a target value are left out. Numeric columns are parsed as floats by the CSV
    reader directly, categorical ones are mapped to their schema codes chunk by chunk into a
    preallocated matrix, so memory stays at one float32 copy plus one chunk of text.
    """
    positive = _canonical(dataset.positive_label)
    matrix = np.empty((dataset.rows, len(encoder.features)), dtype=np.float32)
    labels = np.empty(dataset.rows, dtype=np.int8)
    labelled = np.zeros(dataset.rows, dtype=bool)
    dtypes = {spec.name: ("float64" if not spec.is_categorical else str) for spec in encoder.features}
    dtypes[dataset.target] = str
    position = 0
    with default_storage.open(dataset.file_path, "rb") as handle:
        fmt = sniff_format(handle)
        for chunk in read_chunks(handle, fmt, usecols=[*encoder.names, dataset.target], dtype=dtypes):
            n = len(chunk)
            encoded, _ = encoder.encode_frame(chunk, strict=False)
            matrix[position : position + n] = encoded
            target = chunk[dataset.target]
            mapping = {value: _canonical(value) == positive for value in target.dropna().unique()}
            labels[position : position + n] = target.map(mapping).fillna(False).to_numpy(dtype=bool)
            labelled[position : position + n] = target.notna().to_numpy()
            position += n
    matrix, labels, labelled = matrix[:position], labels[:position], labelled[:position]
    if not labelled.all():
        matrix, labels = matrix[labelled], labels[labelled]
    return matrix, labels

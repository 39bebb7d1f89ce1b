"""What a traffic detector version's model card records (trained here or imported)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def trained_model_card(*, dataset_summary: Mapping[str, Any]) -> dict[str, Any]:
    """The card of a version trained by Tessera: the task, the framework and the dataset it saw."""
    return {"task": "detect", "framework": "ultralytics", "dataset": dict(dataset_summary)}


def imported_model_card(*, parameters: int) -> dict[str, Any]:
    """The card of imported weights, which the out-of-process validator has loaded and checked."""
    return {
        "task": "detect",
        "framework": "ultralytics",
        "parameters": parameters,
        "validated_out_of_process": True,
    }

"""The model card of a credit version: SR 11-7-style documentation generated when it is trained.

Plain data in, a JSON-ready dict out; the portal shows it next to the version (editable text
lives in the portal). Kept apart from the training recipe in `ml.py` so the prose can be read
and reviewed on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from apps.finance.feature_encoding import FeatureSpec

if TYPE_CHECKING:
    from apps.finance.training_data import DatasetSummary

PROTECTED_NAME_HINTS = ("sex", "gender", "race", "ethnic", "religion", "marital", "marriage", "national", "age")
HEADLINE_METRICS = ("roc_auc", "gini", "ks", "brier", "log_loss")


def protected_attribute_candidates(specs: Sequence[FeatureSpec]) -> list[str]:
    """Features whose names look like protected characteristics under ECOA/Reg B."""
    return [s.name for s in specs if any(h in s.name.lower() for h in PROTECTED_NAME_HINTS)]


def credit_model_card(
    dataset: DatasetSummary,
    specs: Sequence[FeatureSpec],
    metrics: dict[str, Any],
    params: dict[str, Any],
    fingerprint: str,
    *,
    positive_rate: float,
    rows: int,
    xgboost_version: str,
) -> dict[str, Any]:
    """The card of a version trained on `dataset` with `params`, evaluated as `metrics` say.

    Args:
        dataset: the training dataset's summary.
        specs: the version's feature specs.
        metrics: the held-out evaluation (`roc_auc`, ..., `baseline`, `beats_baseline`, `split`).
        params: the resolved training parameters.
        fingerprint: the training-data fingerprint recorded on the version.
        positive_rate: the default rate over all labelled rows; `rows` their number.
        xgboost_version: the library version the model was trained with.
    """
    protected = protected_attribute_candidates(specs)
    limitations = [
        f"Trained on {rows} historical applications from '{dataset.name}'; it predicts the default "
        f"definition of column '{dataset.target}' (= {dataset.positive_label!r}) and nothing else.",
        "Performance holds only for applicants like those in the training data; monitor PSI/CSI and "
        "re-validate when the population or the product changes.",
        "Rejected applicants are absent from historical data (no reject inference): PDs for profiles "
        "that were usually declined are extrapolations.",
        "Reason codes are TreeSHAP attributions of the model's log-odds; they explain the model, not causality.",
    ]
    if protected:
        limitations.append(
            "Features that look like protected characteristics under ECOA/Reg B are used: "
            f"{', '.join(protected)}. Review with compliance before production use."
        )
    if not metrics["beats_baseline"]:
        limitations.append("This model does NOT beat its logistic-regression baseline on the held-out split.")
    return {
        "model_type": "XGBoost gradient-boosted trees (binary:logistic), native categorical and missing handling",
        "intended_use": "Estimate the probability of default of consumer credit applications for the "
        "lender that trained it, to support approve/review/decline decisions with reason codes. "
        "Decisions in the review band need a human analyst.",
        "out_of_scope": "Applicants or products unlike the training data; uses other than credit underwriting.",
        "data": {
            "dataset_id": dataset.id,
            "dataset": dataset.name,
            "rows": rows,
            "positive_rate": round(positive_rate, 6),
            "features": len(specs),
            "categorical_features": sum(s.is_categorical for s in specs),
            "fingerprint": fingerprint,
        },
        "evaluation": {
            "split": metrics["split"],
            "model": {k: metrics[k] for k in HEADLINE_METRICS},
            "baseline": {k: metrics["baseline"][k] for k in HEADLINE_METRICS},
            "beats_baseline": metrics["beats_baseline"],
        },
        "training": {"params": params, "xgboost_version": xgboost_version, "trained_at": datetime.now(UTC).isoformat()},
        "limitations": limitations,
        "protected_attribute_candidates": protected,
    }

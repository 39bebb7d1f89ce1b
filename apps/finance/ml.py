"""The `finance.credit_xgboost` ModelKind: a gradient-boosted PD model with TreeSHAP reasons.

The only module of the finance app that imports xgboost (and sklearn's logistic regression for
the baseline). Artifacts are XGBoost's UBJ format (`save_model`, never pickle) plus a JSON
sidecar with the feature schema, so an artifact is self-describing and safe to load.

The kind never touches the ORM or storage: it trains on the `CreditTrainingData` the finance
loader (`apps.finance.training_data`) materialised, and serves through `ml.runtime`. The model
card's prose lives in `apps.finance.model_card`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import xgboost as xgb
from sklearn.model_selection import train_test_split

from apps.finance.choices import MODEL_KIND, ColumnType
from apps.finance.credit_metrics import evaluation_report, margin_table, policy_outcomes
from apps.finance.feature_encoding import FeatureEncoder, FeatureSpec
from apps.finance.model_card import credit_model_card
from apps.finance.stability import categorical_baseline, numeric_baseline
from core.errors import ValidationFailed
from ml.kinds import ModelKind, Reporter, Trained, register_kind

if TYPE_CHECKING:
    from apps.finance.training_data import CreditTrainingData

MODEL_FILE = "model.ubj"
SIDECAR_FILE = "credit_model.json"

# name: (type, default, min, max). Anything else in `params` is refused (400), so a typo
# is not silently ignored.
PARAM_SPEC: dict[str, tuple[type, Any, float | None, float | None]] = {
    "n_estimators": (int, 1000, 1, 5000),
    "learning_rate": (float, 0.05, 0.001, 1.0),
    "max_depth": (int, 4, 1, 12),
    "min_child_weight": (float, 5.0, 0.0, 1000.0),
    "subsample": (float, 0.8, 0.1, 1.0),
    "colsample_bytree": (float, 0.8, 0.1, 1.0),
    "reg_lambda": (float, 1.0, 0.0, 1000.0),
    "reg_alpha": (float, 0.0, 0.0, 1000.0),
    "max_cat_to_onehot": (int, 4, 1, 64),
    "early_stopping_rounds": (int, 50, 1, 500),
    "test_fraction": (float, 0.2, 0.05, 0.5),
    "validation_fraction": (float, 0.2, 0.05, 0.5),
    "seed": (int, 42, 0, 2**31 - 1),
    "class_weight": (str, "auto", None, None),
}
CLASS_WEIGHTS = ("auto", "balanced", "none")
AUTO_BALANCE_BELOW = 0.10  # reweight classes when fewer than 10% of applicants defaulted


def resolve_params(params: dict[str, Any]) -> dict[str, Any]:
    """Defaults filled in and every value checked; raises ValidationFailed with per-field errors."""
    errors: dict[str, list[str]] = {}
    resolved: dict[str, Any] = {}
    for name in params:
        if name not in PARAM_SPEC:
            errors[f"params.{name}"] = [f"Unknown parameter. Known: {', '.join(PARAM_SPEC)}."]
    for name, (kind, default, low, high) in PARAM_SPEC.items():
        value = params.get(name, default)
        try:
            if kind is int and (isinstance(value, bool) or float(value) != int(value)):
                raise ValueError
            value = kind(value)
        except (TypeError, ValueError):
            errors[f"params.{name}"] = [f"Expected {kind.__name__}."]
            continue
        if low is not None and high is not None and not (low <= value <= high):
            errors[f"params.{name}"] = [f"Must be between {low:g} and {high:g}."]
        if name == "class_weight" and value not in CLASS_WEIGHTS:
            errors[f"params.{name}"] = [f"One of {', '.join(CLASS_WEIGHTS)}."]
        resolved[name] = value
    if errors:
        raise ValidationFailed("Invalid training parameters.", code="invalid_params", fields=errors)
    return resolved


SINGLE_THREAD_BELOW_ROWS = 256


@dataclass
class CreditModel:
    """A loaded credit model: the booster, its feature specs and encoder, and the prior shift.

    `single_booster` is a copy pinned to one thread for small requests: starting OpenMP
    threads for one row costs more than the prediction (measured: 16 ms vs 0.3 ms per row on
    a busy 2-core machine), and a per-call `set_param` would race between request threads.
    """

    booster: xgb.Booster
    features: list[FeatureSpec]
    encoder: FeatureEncoder
    log_odds_shift: float
    feature_types: list[str]
    single_booster: xgb.Booster | None = None
    ignored: tuple[str, ...] = ()

    def booster_for(self, rows: int) -> xgb.Booster:
        if self.single_booster is not None and rows < SINGLE_THREAD_BELOW_ROWS:
            return self.single_booster
        return self.booster


def predict_log_odds(model: CreditModel, matrix: np.ndarray) -> np.ndarray:
    """Log-odds of default for an encoded (n, n_features) float32 matrix."""
    booster = model.booster_for(len(matrix))
    margin = booster.inplace_predict(matrix, predict_type="margin", missing=np.nan)
    return np.asarray(margin, dtype=np.float64).reshape(-1) - model.log_odds_shift


def predict_contributions(model: CreditModel, matrix: np.ndarray) -> np.ndarray:
    """TreeSHAP contributions to the log-odds, (n, n_features), bias column dropped."""
    single = len(matrix) < SINGLE_THREAD_BELOW_ROWS
    dmatrix = xgb.DMatrix(
        matrix,
        feature_names=model.encoder.names,
        feature_types=model.feature_types,
        enable_categorical=True,
        missing=np.nan,
        nthread=1 if single else -1,
    )
    booster = model.booster_for(len(matrix))
    return np.asarray(booster.predict(dmatrix, pred_contribs=True))[:, :-1]


class _ProgressCallback(xgb.callback.TrainingCallback):
    """Reports boosting rounds and validation metrics every `every` rounds."""

    def __init__(self, report: Reporter, max_rounds: int, every: int = 10) -> None:
        super().__init__()
        self.report, self.max_rounds, self.every = report, max_rounds, every

    def after_iteration(self, model: Any, epoch: int, evals_log: dict[str, Any]) -> bool:
        rounds = epoch + 1
        if rounds % self.every == 0 or rounds == self.max_rounds:
            valid = evals_log.get("valid", {})
            auc = float(valid["auc"][-1]) if valid.get("auc") else None
            loss = float(valid["logloss"][-1]) if valid.get("logloss") else None
            self.report(
                progress=0.05 + 0.8 * rounds / self.max_rounds,
                message=f"Boosting round {rounds}/{self.max_rounds}, validation AUC {auc:.4f}",
                metrics={"round": rounds, "valid_auc": auc, "valid_logloss": loss},
            )
        return False


class CreditXGBoost(ModelKind[CreditModel, np.ndarray, float]):
    """Probability-of-default model: XGBoost with native categorical and missing-value support.

    Serving (through `ml.runtime`): `predict` gives the log-odds of default of each encoded row,
    `explain` their TreeSHAP contributions, `preprocessor` the version's `FeatureEncoder`, which
    the domain uses to validate and encode applications before either.
    """

    name = MODEL_KIND
    artifact_format = "xgboost-ubj"
    import_filename = "model.ubj"

    def train(
        self,
        *,
        data: CreditTrainingData,
        params: dict[str, Any],
        report: Reporter,
        parent: CreditModel | None = None,
    ) -> Trained:
        """Train on a materialised dataset, evaluate on a stratified held-out split against a logistic baseline.

        Args:
            data: the run's data as `apps.finance.training_data.credit_training_data` built it
                (the policy at training time gives the approval/bad rates the version reports).
            params: see `PARAM_SPEC`.
            report: progress callback of the training run.
        """
        p = resolve_params(params)
        dataset, policy, columns = data.dataset, data.policy, data.columns
        matrix, y = data.matrix, data.labels
        report(progress=0.01, message=f"Loaded {len(y)} rows of {dataset.name}")
        if len(np.unique(y)) < 2 or min(np.bincount(y, minlength=2)) < 10:
            raise ValidationFailed("Training needs at least 10 defaults and 10 non-defaults.", code="too_few")

        idx = np.arange(len(y))
        fit_idx, test_idx = train_test_split(idx, test_size=p["test_fraction"], stratify=y, random_state=p["seed"])
        train_idx, valid_idx = train_test_split(
            fit_idx, test_size=p["validation_fraction"], stratify=y[fit_idx], random_state=p["seed"]
        )
        positive_rate = float(y[train_idx].mean())
        balance = p["class_weight"] == "balanced" or (
            p["class_weight"] == "auto" and positive_rate < AUTO_BALANCE_BELOW
        )
        scale_pos_weight = (1 - positive_rate) / positive_rate if balance else 1.0
        # Reweighting defaults by w shifts the learned log-odds by ln(w); subtracting it back
        # keeps the PDs calibrated to the real default rate (prior correction, King & Zeng 2001).
        log_odds_shift = math.log(scale_pos_weight)

        missing_rates = np.isnan(matrix[train_idx]).mean(axis=0)
        specs = [
            FeatureSpec.from_dict({**c, "missing_allowed": bool(missing_rates[i] > 0)}) for i, c in enumerate(columns)
        ]
        feature_types = ["c" if s.is_categorical else "q" for s in specs]
        names = [s.name for s in specs]

        def dmatrix(rows: np.ndarray) -> xgb.DMatrix:
            return xgb.DMatrix(
                matrix[rows],
                label=y[rows],
                feature_names=names,
                feature_types=feature_types,
                enable_categorical=True,
                missing=np.nan,
            )

        booster_params = {
            "objective": "binary:logistic",
            "eval_metric": ["logloss", "auc"],
            "tree_method": "hist",
            "eta": p["learning_rate"],
            "max_depth": p["max_depth"],
            "min_child_weight": p["min_child_weight"],
            "subsample": p["subsample"],
            "colsample_bytree": p["colsample_bytree"],
            "lambda": p["reg_lambda"],
            "alpha": p["reg_alpha"],
            "max_cat_to_onehot": p["max_cat_to_onehot"],
            "scale_pos_weight": scale_pos_weight,
            "seed": p["seed"],
            "nthread": os.cpu_count() or 1,
        }
        d_train, d_valid = dmatrix(train_idx), dmatrix(valid_idx)
        report(progress=0.05, message=f"Training on {len(train_idx)} rows, validating on {len(valid_idx)}")
        booster = xgb.train(
            booster_params,
            d_train,
            num_boost_round=p["n_estimators"],
            evals=[(d_valid, "valid")],
            verbose_eval=False,
            callbacks=[
                _ProgressCallback(report, p["n_estimators"]),
                # Stop on log-loss, not AUC: AUC only ranks, so on a small validation split it can peak
                # after a handful of trees whose margins are still shrunk toward the base rate, and
                # the kept booster's PDs (what the scorecard turns into points) are miscalibrated.
                xgb.callback.EarlyStopping(
                    rounds=p["early_stopping_rounds"],
                    metric_name="logloss",
                    data_name="valid",
                    maximize=False,
                    save_best=True,
                ),
            ],
        )
        # Columns the analyst excluded (ids, protected characteristics) are accepted and ignored
        # when a client sends them with an application; any other unknown name is an error.
        ignored = tuple(data.excluded)
        model = CreditModel(
            booster=booster,
            features=specs,
            encoder=FeatureEncoder(specs, ignored),
            log_odds_shift=log_odds_shift,
            feature_types=feature_types,
            ignored=ignored,
        )
        report(progress=0.88, message="Evaluating on the held-out split and fitting the logistic baseline")
        test_log_odds = predict_log_odds(model, matrix[test_idx])
        valid_log_odds = predict_log_odds(model, matrix[valid_idx])
        baseline_log_odds = _logistic_baseline(matrix, y, train_idx, test_idx, specs)
        y_test = y[test_idx].astype(np.int64)

        metrics = evaluation_report(y_test, test_log_odds)
        baseline = evaluation_report(y_test, baseline_log_odds)
        metrics["baseline"] = {"model": "logistic_regression", **baseline}
        metrics["beats_baseline"] = metrics["roc_auc"] > baseline["roc_auc"]
        metrics["auc_lift_over_baseline"] = round(metrics["roc_auc"] - baseline["roc_auc"], 6)
        metrics["validation"] = {"roc_auc": round(float(_auc(y[valid_idx], valid_log_odds)), 6)}
        metrics["best_iteration"] = int(booster.best_iteration) if hasattr(booster, "best_iteration") else None
        metrics["rounds"] = booster.num_boosted_rounds()
        metrics["margin_table"] = margin_table(y_test, test_log_odds)
        metrics["policy_outcomes"] = policy_outcomes(metrics["margin_table"], policy)
        metrics["feature_importance"] = _importance(booster, names)
        metrics["split"] = {
            "train": len(train_idx),
            "validation": len(valid_idx),
            "test": len(test_idx),
            "test_positive_rate": round(float(y_test.mean()), 6),
            "stratified": True,
            "seed": p["seed"],
        }
        metrics["class_weight"] = {
            "balanced": balance,
            "scale_pos_weight": round(scale_pos_weight, 6),
            "log_odds_shift": round(log_odds_shift, 6),
        }

        input_schema = _input_schema(data, specs, matrix[train_idx], test_log_odds)
        fingerprint = hashlib.sha256(
            json.dumps(
                {"file": dataset.sha256, "features": names, "target": dataset.target, "pos": dataset.positive_label},
                sort_keys=True,
            ).encode()
        ).hexdigest()
        card = credit_model_card(
            dataset,
            specs,
            metrics,
            p,
            fingerprint,
            positive_rate=float(y.mean()),
            rows=len(y),
            xgboost_version=xgb.__version__,
        )
        report(progress=1.0, message=f"Done: test AUC {metrics['roc_auc']:.4f} (baseline {baseline['roc_auc']:.4f})")
        return Trained(
            model=model,
            metrics=metrics,
            params={**p, "xgboost_version": xgb.__version__},
            input_schema=input_schema,
            data_fingerprint=fingerprint,
            model_card=card,
        )

    def save(self, trained: Trained, directory: Path) -> None:
        model: CreditModel = trained.model
        model.booster.save_model(str(directory / MODEL_FILE))
        sidecar = {
            "format": 1,
            "features": [_spec_dict(s) for s in model.features],
            "feature_types": model.feature_types,
            "log_odds_shift": model.log_odds_shift,
            "ignored": list(model.ignored),
            "xgboost_version": xgb.__version__,
        }
        (directory / SIDECAR_FILE).write_text(json.dumps(sidecar, indent=1))

    def load(self, directory: Path, *, device: str, half: bool = False) -> CreditModel:
        sidecar = json.loads((directory / SIDECAR_FILE).read_text())
        booster = xgb.Booster()
        booster.load_model(str(directory / MODEL_FILE))
        if device.startswith("cuda"):
            booster.set_param({"device": device})
        single = booster.copy()
        single.set_param({"nthread": 1})
        specs = [FeatureSpec.from_dict(f) for f in sidecar["features"]]
        ignored = tuple(sidecar.get("ignored", ()))  # absent from artifacts saved before it was kept
        return CreditModel(
            booster=booster,
            single_booster=single,
            features=specs,
            encoder=FeatureEncoder(specs, ignored),
            log_odds_shift=float(sidecar["log_odds_shift"]),
            feature_types=list(sidecar["feature_types"]),
            ignored=ignored,
        )

    def predict(self, loaded: CreditModel, inputs: Sequence[np.ndarray], **options: Any) -> Sequence[float]:
        """Log-odds of default (float64) of each encoded row (`preprocessor(loaded)` encodes them)."""
        matrix = _matrix(loaded, inputs)
        if not len(matrix):
            return cast(Sequence[float], np.empty(0, dtype=np.float64))
        # numpy's stubs do not declare an ndarray a Sequence; a 1-D float array is one
        return cast(Sequence[float], predict_log_odds(loaded, matrix))

    def explain(self, loaded: CreditModel, inputs: Sequence[np.ndarray], **options: Any) -> Sequence[np.ndarray]:
        """TreeSHAP contributions to the log-odds of each encoded row: (n, n_features), bias dropped."""
        matrix = _matrix(loaded, inputs)
        if not len(matrix):
            return cast(Sequence[np.ndarray], np.empty((0, len(loaded.features)), dtype=np.float32))
        return cast(Sequence[np.ndarray], predict_contributions(loaded, matrix))

    def preprocessor(self, loaded: CreditModel) -> FeatureEncoder:
        """The version's recorded preprocessing: its feature encoder (specs, names, index, ignored columns)."""
        return loaded.encoder


def _matrix(loaded: CreditModel, inputs: Sequence[np.ndarray]) -> np.ndarray:
    """The encoded rows as one (n, n_features) float32 array (no copy when they already are one)."""
    matrix = np.asarray(inputs, dtype=np.float32)
    if matrix.size == 0:
        return np.empty((0, len(loaded.features)), dtype=np.float32)
    return matrix


def _auc(y: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, scores))


def _logistic_baseline(
    matrix: np.ndarray, y: np.ndarray, train_idx: np.ndarray, test_idx: np.ndarray, specs: list[FeatureSpec]
) -> np.ndarray:
    """A regularised logistic regression on the same split: median-imputed, scaled numerics with
    missing indicators, one-hot categories (missing as its own level). Returns test log-odds."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [i for i, s in enumerate(specs) if not s.is_categorical]
    categorical = [i for i, s in enumerate(specs) if s.is_categorical]
    transformers: list[tuple[str, Any, list[int]]] = []
    if numeric:
        transformers.append(
            ("num", make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()), numeric)
        )
    if categorical:
        transformers.append(
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value=-1.0), OneHotEncoder(handle_unknown="ignore")
                ),
                categorical,
            )
        )
    pipeline = make_pipeline(ColumnTransformer(transformers), LogisticRegression(max_iter=1000))
    train = matrix[train_idx].astype(np.float64)
    # Columns entirely missing in training would make the imputer drop them; they carry no signal.
    train[:, np.isnan(train).all(axis=0)] = 0.0
    pipeline.fit(train, y[train_idx])
    test = matrix[test_idx].astype(np.float64)
    test[:, np.isnan(matrix[train_idx]).all(axis=0)] = 0.0
    return np.asarray(pipeline.decision_function(test), dtype=np.float64)


def _importance(booster: xgb.Booster, names: list[str]) -> list[dict[str, Any]]:
    gains = cast(dict[str, float], booster.get_score(importance_type="total_gain"))
    total = sum(gains.values()) or 1.0
    ranked = sorted(((gains.get(n, 0.0) / total, n) for n in names), reverse=True)
    return [{"feature": n, "gain_share": round(g, 6)} for g, n in ranked[:40]]


def _spec_dict(spec: FeatureSpec) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": spec.name,
        "type": spec.type,
        "min": spec.min,
        "max": spec.max,
        "missing_allowed": spec.missing_allowed,
        "description": spec.description,
        "reason_code": spec.reason_code,
    }
    if spec.is_categorical:
        data["categories"] = list(spec.categories)
    return data


def _input_schema(
    data: CreditTrainingData, specs: list[FeatureSpec], train_matrix: np.ndarray, test_log_odds: np.ndarray
) -> dict[str, Any]:
    features = []
    for i, spec in enumerate(specs):
        column = train_matrix[:, i].astype(np.float64)
        baseline = (
            categorical_baseline(column, len(spec.categories))
            if spec.type == ColumnType.CATEGORICAL
            else numeric_baseline(column)
        )
        features.append({**_spec_dict(spec), "baseline": baseline})
    return {
        "features": features,
        "ignored": list(data.not_features),
        "target": data.dataset.target,
        "positive_label": data.dataset.positive_label,
        "dataset_id": data.dataset.id,
        "dataset_name": data.dataset.name,
        "score_baseline": numeric_baseline(test_log_odds),
    }


register_kind(CreditXGBoost())

"""Retail's model kinds: implicit ALS and BPR, an item-item cosine kNN, popularity, and `auto`.

The only retail module that imports `implicit`. Every kind is of the family `retail.recommender`,
so one registered model's versions may be any of them and an A/B split can compare two
algorithms. They share one artifact format (`retail-npz`: numpy arrays without pickle, JSON id
maps and parameters) and one loader, which dispatches on the algorithm recorded in the artifact.

Training (`train`): the interaction table is split temporally (`evaluation.leave_last_out`); a
parameter grid (`params["search"]`) or, for `auto`, every algorithm is tried on a validation
split carved the same way from the training part; the chosen configuration is fitted on the
training part, evaluated on the held-out part beside a popularity baseline on the same split,
and that very model is the version (its metrics describe the served artifact; customers'
held-out and later events still count when serving, see `RecommendRequest.user_items`).

Serving (`predict` with `RecommendRequest` or `SimilarRequest`, `explain` with `ExplainRequest`)
takes rows already mapped through the version's `IdMaps` (`preprocessor`). ALS recomputes the
customer's factors from their live interaction row (implicit's `recalculate_user`), so an event
since training counts at once; BPR uses its trained factors, folding in a customer it never saw
from the items they touched; kNN and popularity score the live row directly.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from apps.retail.choices import ALS_KIND, BPR_KIND, FAMILY, ITEM_KNN_KIND, POPULARITY_KIND, Algorithm
from apps.retail.evaluation import (
    METRIC_DEFINITIONS,
    InteractionTable,
    K,
    RecommendFn,
    Split,
    evaluate,
    leave_last_out,
    popularity_recommend,
    popularity_scores,
)
from core.errors import ValidationFailed
from ml.kinds import ArtifactRejected, ModelKind, Reporter, Trained, register_kind

ARTIFACT_FORMAT = "retail-npz"
MAX_TRIALS = 48
REPORT_SECONDS = 0.5  # the job's progress and loss while fitting, at most this often (and the first and last)

DEFAULTS: dict[str, dict[str, Any]] = {
    Algorithm.ALS: {"factors": 64, "regularization": 0.05, "alpha": 1.0, "iterations": 15},
    Algorithm.BPR: {"factors": 64, "learning_rate": 0.05, "regularization": 0.01, "iterations": 100},
    Algorithm.ITEM_KNN: {"neighbours": 100},
    Algorithm.POPULARITY: {},
}
# the values a search may try for each algorithm (and their types)
PARAM_TYPES: dict[str, dict[str, type]] = {
    Algorithm.ALS: {"factors": int, "regularization": float, "alpha": float, "iterations": int},
    Algorithm.BPR: {"factors": int, "learning_rate": float, "regularization": float, "iterations": int},
    Algorithm.ITEM_KNN: {"neighbours": int},
    Algorithm.POPULARITY: {},
}
LIMITS: dict[str, tuple[float, float]] = {
    "factors": (1, 1024),
    "regularization": (0.0, 1000.0),
    "alpha": (0.0, 10_000.0),
    "iterations": (1, 1000),
    "learning_rate": (1e-6, 10.0),
    "neighbours": (1, 10_000),
}
# the small grids `auto` tries for each algorithm on the validation split
AUTO_GRID: dict[str, dict[str, list[Any]]] = {
    Algorithm.ALS: {"factors": [32, 64], "regularization": [0.05, 1.0]},
    Algorithm.BPR: {"factors": [64]},
    Algorithm.ITEM_KNN: {"neighbours": [50, 200]},
    Algorithm.POPULARITY: {},
}


# --- What the loader materialises and what serving passes in ----------------------------------------


@dataclass
class Interactions:
    """A training run's data: the aggregated (customer, item) table and the ids behind its rows."""

    table: InteractionTable
    customer_ids: list[str]
    item_ids: list[str]
    fingerprint: str = ""
    description: dict[str, Any] = field(default_factory=dict)


@dataclass
class IdMaps:
    """The version's customer and item ids ↔ matrix rows (the merchant's own ids).

    With `seen` and `history`, also the interactions the version was trained on (customers x
    items, the confidences summed up to event `history["through_event"]` with
    `history["event_weights"]`): a customer's live row is then their stored row plus the events
    after it (`rows_with`), so serving reads only what is new (see `serving.Snapshot`).
    """

    customers: list[str]
    items: list[str]
    customer_rows: dict[str, int] = field(default_factory=dict)
    item_rows: dict[str, int] = field(default_factory=dict)
    seen: sp.csr_matrix | None = None
    history: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.customer_rows = {customer: row for row, customer in enumerate(self.customers)}
        self.item_rows = {item: row for row, item in enumerate(self.items)}
        self._seen_padded: sp.csr_matrix | None = None

    def rows_with(
        self, customers: Sequence[str], new: Sequence[Mapping[str, float]]
    ) -> tuple[sp.csr_matrix, np.ndarray]:
        """Each customer's live row (stored row + `new` confidences), and which of them `new` changed.

        A pair whose sum is no longer positive leaves the row, as it would had the whole history
        been summed (the version's snapshot holds no such pair: `history["pairs_not_positive"]` is 0).
        """
        assert self.seen is not None, "a version without its stored interactions"
        if self._seen_padded is None:  # one empty row at the end for customers the version never saw
            self._seen_padded = sp.vstack([self.seen, sp.csr_matrix((1, self.seen.shape[1]), dtype=np.float32)]).tocsr()
        unknown = self.seen.shape[0]
        positions = np.fromiter((self.customer_rows.get(c, unknown) for c in customers), np.int64, len(customers))
        rows = self._seen_padded[positions]
        delta = self.live_rows(new)
        changed = np.diff(delta.indptr) > 0
        if changed.any():
            rows = (rows + delta).tocsr()
            if (rows.data <= 0).any():
                rows.data[rows.data <= 0] = 0
                rows.eliminate_zeros()
            rows.sort_indices()
        return rows, changed

    def item_rows_of(self, ids: Sequence[str]) -> list[int]:
        return [self.item_rows[item] for item in ids if item in self.item_rows]

    def live_row(self, weights: Mapping[str, float]) -> sp.csr_matrix:
        """A 1 x items CSR row of confidences from `{item id: weight}` (ids the model lacks are skipped)."""
        return self.live_rows([weights])

    def live_rows(self, customers: Sequence[Mapping[str, float]]) -> sp.csr_matrix:
        """`live_row` for many customers at once: one row each, columns sorted."""
        columns: list[int] = []
        data: list[float] = []
        indptr = [0]
        rows = self.item_rows
        for weights in customers:
            for item, weight in weights.items():
                column = rows.get(item)
                if column is not None:
                    columns.append(column)
                    data.append(weight)
            indptr.append(len(columns))
        matrix = sp.csr_matrix(
            (np.array(data, dtype=np.float32), np.array(columns, dtype=np.int32), np.array(indptr, dtype=np.int32)),
            shape=(len(customers), len(self.items)),
        )
        matrix.sort_indices()
        return matrix


@dataclass(frozen=True)
class RecommendRequest:
    """Top-n items for one customer.

    `user_items` is the customer's live 1 x items confidence row (every event up to now);
    `customer_row` their row in the version (None for a customer it never saw); `exclude` item
    rows never to return; `items` the only rows to consider (a category), or None for all.
    """

    user_items: sp.csr_matrix
    customer_row: int | None = None
    n: int = 10
    filter_seen: bool = True
    exclude: tuple[int, ...] = ()
    items: tuple[int, ...] | None = None
    stored_factors: bool = False  # the live row is the one the version solved `customer_row` from
    # a batch's requests may share one matrix of all their rows: this request's is row `row` of it
    row: int | None = None

    def live(self) -> sp.csr_matrix:
        """The customer's 1 x items live row."""
        if self.row is None:
            return self.user_items
        start, end = self.user_items.indptr[self.row], self.user_items.indptr[self.row + 1]
        return sp.csr_matrix(
            (self.user_items.data[start:end], self.user_items.indices[start:end], np.array([0, end - start])),
            shape=(1, self.user_items.shape[1]),
        )


@dataclass(frozen=True)
class SimilarRequest:
    """The n items most similar to `item_row` (never the item itself)."""

    item_row: int
    n: int = 10
    exclude: tuple[int, ...] = ()
    items: tuple[int, ...] | None = None


@dataclass(frozen=True)
class ExplainRequest:
    """Why `item_rows` were recommended to the customer with the live row `user_items`."""

    user_items: sp.csr_matrix
    item_rows: tuple[int, ...]
    reasons: int = 3


@dataclass(frozen=True)
class Recommended:
    """Ranked item rows and their scores (best first)."""

    items: np.ndarray
    scores: np.ndarray


@dataclass
class LoadedRecommender:
    """A loaded version: its algorithm, the implicit model (None for popularity) and its id maps."""

    algorithm: str
    model: Any
    ids: IdMaps
    popularity: np.ndarray
    params: dict[str, Any]
    single: Any = None  # the same model on one thread, for one customer at a time (see `engine`)

    def engine(self, requests: int = 1) -> Any:
        """implicit's model for `requests` customers at once.

        implicit runs every call on all cores (`num_threads=0`); for one customer that costs more in
        thread start-up and BLAS contention than the work itself (8 ms instead of 0.4 ms for
        `recalculate_user`), so single requests use a one-thread copy sharing the same factors.
        """
        if requests > 1 or self.single is None:
            return self.model
        return self.single


# --- Fitting --------------------------------------------------------------------------------------


_blas: Any = None


def one_blas_thread() -> Any:
    """A context in which BLAS runs on one thread, as implicit asks: its own threads do the work.

    With BLAS threads on top, one customer's `recalculate_user` takes 8 ms instead of 0.2 ms
    (the threads contend). threadpoolctl's controller is built once: its `limit` then costs
    10 µs, `threadpool_limits` 0.4 ms (it inspects every loaded library each time).
    """
    global _blas
    if _blas is None:
        from threadpoolctl import ThreadpoolController

        _blas = ThreadpoolController()
    return _blas.limit(limits=1, user_api="blas")


def _implicit_model(algorithm: str, params: Mapping[str, Any], *, seed: int = 0) -> Any:
    with one_blas_thread():  # implicit checks (and warns about) BLAS threads on construction
        return _implicit_model_built(algorithm, params, seed=seed)


def _implicit_model_built(algorithm: str, params: Mapping[str, Any], *, seed: int) -> Any:
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.cpu.bpr import BayesianPersonalizedRanking
    from implicit.nearest_neighbours import CosineRecommender

    if algorithm == Algorithm.ALS:
        return AlternatingLeastSquares(
            factors=int(params["factors"]),
            regularization=float(params["regularization"]),
            alpha=float(params["alpha"]),
            iterations=int(params["iterations"]),
            calculate_training_loss=bool(params.get("report_loss", True)),
            random_state=seed,
        )
    if algorithm == Algorithm.BPR:
        return BayesianPersonalizedRanking(
            factors=int(params["factors"]),
            learning_rate=float(params["learning_rate"]),
            regularization=float(params["regularization"]),
            iterations=int(params["iterations"]),
            random_state=seed,
        )
    if algorithm == Algorithm.ITEM_KNN:
        return CosineRecommender(K=int(params["neighbours"]))
    return None


def fit(
    algorithm: str,
    matrix: sp.csr_matrix,
    params: Mapping[str, Any],
    *,
    on_iteration: Callable[[int, float | None], None] | None = None,
    seed: int = 0,
) -> Any:
    """Fit `algorithm` on the customers x items `matrix`; the implicit model, or None for popularity.

    `on_iteration(iteration, loss)` is called for the iterations worth reporting (`_Reporting`).
    """
    model = _implicit_model(algorithm, params, seed=seed)
    if model is None:
        return None
    with one_blas_thread():
        if algorithm == Algorithm.ITEM_KNN:
            model.fit(matrix, show_progress=False)
        else:
            model.fit(matrix, show_progress=False, callback=_Reporting(model, on_iteration))
    return model


class _Reporting:
    """implicit's per-iteration callback: reports the first, the last and at most one iteration every
    `REPORT_SECONDS` in between (a slow fit: every one), with ALS's training loss.

    Each report means writes the fit waits for, and ALS's loss costs 40 % of an iteration on
    MovieLens: so the loss is computed only for the iterations that are reported. implicit reads
    `calculate_training_loss` at each iteration's end, and the callback, called after each
    iteration, sets it for the next one: reported when it is the last, or when a report would be
    due by the time it ends (the last iteration's duration ahead).
    """

    def __init__(self, model: Any, on_iteration: Callable[[int, float | None], None] | None) -> None:
        self.model, self.on_iteration = model, on_iteration
        self.iterations = int(getattr(model, "iterations", 1))
        self.loss = bool(getattr(model, "calculate_training_loss", False))  # ALS with report_loss
        self.due = True  # the first iteration is reported
        self.last_report = -math.inf

    def __call__(self, iteration: int, elapsed: float, *rest: Any) -> None:
        now = time.monotonic()
        if self.due and self.on_iteration is not None:
            loss = rest[0] if rest and isinstance(rest[0], int | float) else None
            self.on_iteration(iteration, None if loss is None else float(loss))
            self.last_report = now
        following = iteration + 1
        self.due = following == self.iterations - 1 or now + elapsed - self.last_report >= REPORT_SECONDS
        if self.loss:
            self.model.calculate_training_loss = self.due


def _refit_wanted(params: Mapping[str, Any], algorithm: str) -> bool:
    """`params.refit`; by default only BPR refits (serving cannot re-solve a known BPR customer's factors)."""
    refit = params.get("refit", algorithm == Algorithm.BPR)
    if not isinstance(refit, bool):
        raise ValidationFailed("refit must be true or false.", fields={"params": ["refit: expected a boolean."]})
    return refit


def _fold_in(algorithm: str, model: Any, everything: sp.csr_matrix) -> None:
    """ALS: every customer's factors solved from their whole row (`recalculate_user`, all customers at once).

    The item factors stay those of the evaluated fit; this is the solve serving makes per request,
    so the stored factors are what a customer without newer events is served from.
    """
    if algorithm != Algorithm.ALS or everything.shape[0] == 0:
        return
    with one_blas_thread():
        model.user_factors = model.recalculate_user(np.arange(everything.shape[0]), everything)


def _history(data: Interactions) -> dict[str, Any] | None:
    """What serving needs to add newer events to the stored rows (None: it reads whole histories).

    Only for a snapshot of every event (no `since`) up to a clean cut (`through_event`) in which
    every pair's confidence is positive: otherwise stored row + newer events is not the live row.
    """
    described = data.description
    if described.get("through_event") is None or described.get("since") or described.get("pairs_not_positive"):
        return None
    return {
        "through_event": int(described["through_event"]),
        "event_weights": dict(described["event_weights"]),
        "history_revision": int(described.get("history_revision") or 0),
    }


def _recommend_fn(algorithm: str, model: Any, train: sp.csr_matrix) -> RecommendFn:
    """The evaluation's view of a fitted model: trained customers' top k, their train items excluded."""
    if model is None:
        return popularity_recommend(train)

    def recommend(rows: np.ndarray, user_items: sp.csr_matrix, k: int) -> np.ndarray:
        with one_blas_thread():
            ids, _ = model.recommend(rows, user_items, N=k, filter_already_liked_items=True)
        ids = np.asarray(ids).reshape(len(rows), -1)
        if ids.shape[1] < k:  # kNN returns short lists for customers with few neighbours
            ids = np.pad(ids, ((0, 0), (0, k - ids.shape[1])), constant_values=-1)
        return ids[:, :k]

    return recommend


# --- Parameters -----------------------------------------------------------------------------------


def _typed(algorithm: str, name: str, value: Any, *, where: str) -> Any:
    types = PARAM_TYPES[algorithm]
    if name not in types:
        known = ", ".join(sorted(types)) or "none"
        raise ValidationFailed(
            f"{algorithm} has no parameter {name!r} (known: {known}).", fields={where: [f"Unknown: {name}."]}
        )
    wanted = types[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or (wanted is int and value != int(value)):
        raise ValidationFailed(f"{name} must be a number.", fields={where: [f"{name}: expected {wanted.__name__}."]})
    low, high = LIMITS[name]
    if not low <= value <= high:
        raise ValidationFailed(f"{name} must be in [{low:g}, {high:g}].", fields={where: [f"{name}: out of range."]})
    return wanted(value)


def resolve_params(algorithm: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The algorithm's defaults overlaid with `params` (validated); `search`/`holdout`/`seed` kept aside."""
    resolved = dict(DEFAULTS[algorithm])
    _refit_wanted(params, algorithm)  # a bad `refit` is refused before the job starts
    for name, value in params.items():
        if name in {"search", "holdout", "seed", "report_loss", "refit"}:
            continue
        resolved[name] = _typed(algorithm, name, value, where="params")
    return resolved


def search_grid(algorithm: str, search: Any) -> list[dict[str, Any]]:
    """Every combination of `search`'s value lists for `algorithm`, validated (at most MAX_TRIALS)."""
    if not isinstance(search, Mapping) or not search:
        raise ValidationFailed("search must be an object of parameter → list of values.", fields={"search": ["Bad."]})
    names, values = [], []
    for name, options in search.items():
        if not isinstance(options, list) or not options:
            raise ValidationFailed(f"search.{name} must be a non-empty list.", fields={"search": [f"{name}: list."]})
        names.append(name)
        values.append([_typed(algorithm, name, value, where="search") for value in options])
    grid = [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]
    if len(grid) > MAX_TRIALS:
        raise ValidationFailed(
            f"The search has {len(grid)} combinations; at most {MAX_TRIALS}.", fields={"search": ["Too many."]}
        )
    return grid


# --- The kinds ------------------------------------------------------------------------------------


class RecommenderKind(ModelKind[LoadedRecommender, Any, Any]):
    """One algorithm of the retail recommender family (see the module docstring)."""

    algorithm: str = Algorithm.ALS
    family = FAMILY
    artifact_format = ARTIFACT_FORMAT
    max_batch_size = 1000

    # -- training

    def candidates(self, params: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """The (algorithm, parameters) configurations this run chooses between (one: no choice)."""
        base = resolve_params(self.algorithm, params)
        if "search" not in params:
            return [(self.algorithm, base)]
        return [(self.algorithm, {**base, **combo}) for combo in search_grid(self.algorithm, params["search"])]

    def train(self, *, data: Interactions, params: dict[str, Any], report: Reporter, parent: Any = None) -> Trained:
        holdout = params.get("holdout", 1)
        if isinstance(holdout, bool) or not isinstance(holdout, int) or not 1 <= holdout <= 50:
            raise ValidationFailed("holdout must be an integer in [1, 50].", fields={"params": ["holdout"]})
        seed = int(params.get("seed", 0)) if isinstance(params.get("seed", 0), int) else 0
        candidates = self.candidates(params)
        if len(data.table) == 0:
            raise ValidationFailed("There are no interactions to train on.", code="no_data")
        split = leave_last_out(data.table, holdout=holdout)
        trials: list[dict[str, Any]] = []
        chosen_algorithm, chosen = candidates[0]
        if len(candidates) > 1:
            validation = leave_last_out(split.train, holdout=holdout)
            train_matrix = validation.train.matrix()
            for index, (algorithm, config) in enumerate(candidates):
                report(progress=0.6 * index / len(candidates), message=f"Trial {index + 1}/{len(candidates)}")
                started = time.perf_counter()
                model = fit(algorithm, train_matrix, {**config, "report_loss": False}, seed=seed)
                metrics = evaluate(_recommend_fn(algorithm, model, train_matrix), validation)
                trial = {
                    "algorithm": str(algorithm),
                    "params": config,
                    "seconds": round(time.perf_counter() - started, 3),
                }
                trial |= {f"validation_{name}": round(value, 6) for name, value in metrics.items()}
                trials.append(trial)
                report(
                    metrics={"trial": index + 1, "algorithm": algorithm, f"validation_ndcg@{K}": metrics[f"ndcg@{K}"]}
                )
            best = max(range(len(trials)), key=lambda i: (trials[i][f"validation_ndcg@{K}"], -i))
            trials[best]["chosen"] = True
            chosen_algorithm, chosen = candidates[best]
        offset = 0.6 if len(candidates) > 1 else 0.0
        span = 1 - offset
        iterations = int(chosen.get("iterations", 1))

        def progress(start: float, width: float, *, with_loss: bool) -> Callable[[int, float | None], None]:
            def on_iteration(iteration: int, loss: float | None) -> None:  # as often as `_Reporting` says
                done = start + width * (iteration + 1) / iterations
                if not with_loss:
                    report(progress=done)
                    return
                metrics: dict[str, Any] = {"iteration": iteration + 1}
                if loss is not None:
                    metrics["loss"] = loss
                report(progress=done, metrics=metrics)

            return on_iteration

        refit = _refit_wanted(params, chosen_algorithm)
        matrix = split.train.matrix()
        everything = data.table.matrix()
        # 1. the configuration fitted on the split's train part and evaluated on its held-out items
        report(progress=offset, message="Fitting on the train part of the split")
        started = time.perf_counter()
        evaluated = fit(
            chosen_algorithm,
            matrix,
            {**chosen, "report_loss": False if refit else params.get("report_loss", True)},
            on_iteration=progress(offset, span * (0.4 if refit else 0.85), with_loss=not refit),
            seed=seed,
        )
        fit_seconds = time.perf_counter() - started
        report(progress=offset + span * (0.42 if refit else 0.87), message="Evaluating on the held-out split")
        metrics = self._offline_metrics(chosen_algorithm, evaluated, matrix, split)
        if refit:
            # 2. opt-in (`params.refit`, BPR's default): the same configuration and seed fitted again
            # on every interaction, so the held-out latest items shape the item side too
            report(progress=offset + span * 0.5, message="Training the version on every interaction")
            started = time.perf_counter()
            model = fit(
                chosen_algorithm,
                everything,
                {**chosen, "report_loss": params.get("report_loss", True)},
                on_iteration=progress(offset + span * 0.5, span * 0.45, with_loss=True),
                seed=seed,
            )
            fit_seconds = time.perf_counter() - started
            _fold_in(chosen_algorithm, model, everything)  # ALS's stored factors: serving's own solve
            served = (
                "refitted on every interaction with the evaluated configuration and seed "
                f"({len(data.table)} interactions; the metrics are those of the fit on the split's train part)"
            )
        else:
            # 2. the default: the evaluated fit is the version. Its customers' factors are solved
            # again from every interaction (held-out items included), the exact computation serving
            # makes from a customer's live row (`recalculate_user`), for a fraction of a second fit
            model = evaluated
            _fold_in(chosen_algorithm, model, everything)
            served = (
                "the evaluated fit on the split's train part (the metrics are this model's); customers' "
                f"factors solved again from all {len(data.table)} interactions, as serving does from the "
                "live row (ALS); set params.refit to fit again on every interaction"
            )
        metrics["fit_seconds"] = round(fit_seconds, 3)
        loaded = LoadedRecommender(
            algorithm=str(chosen_algorithm),
            model=model,
            ids=IdMaps(customers=data.customer_ids, items=data.item_ids, seen=everything, history=_history(data)),
            popularity=popularity_scores(everything).astype(np.float32),
            params=chosen,
        )
        return Trained(
            model=loaded,
            metrics=metrics,
            params={
                "algorithm": str(chosen_algorithm),
                **chosen,
                "holdout": holdout,
                "seed": seed,
                "refit": refit,
                "trials": trials,
            },
            input_schema={"customers": len(data.customer_ids), "items": len(data.item_ids), **data.description},
            data_fingerprint=data.fingerprint,
            model_card={
                "algorithm": str(chosen_algorithm),
                "split": split.describe(),
                "metric_definitions": METRIC_DEFINITIONS,
                "served_model": served,
            },
            kind=KIND_NAMES[chosen_algorithm],
        )

    @staticmethod
    def _offline_metrics(algorithm: str, model: Any, matrix: sp.csr_matrix, split: Split) -> dict[str, Any]:
        ours = evaluate(_recommend_fn(algorithm, model, matrix), split)
        baseline = evaluate(popularity_recommend(matrix), split)
        beats = ours[f"ndcg@{K}"] > baseline[f"ndcg@{K}"]
        metrics: dict[str, Any] = {name: round(value, 6) for name, value in ours.items()}
        metrics["popularity"] = {name: round(value, 6) for name, value in baseline.items()}
        metrics["beats_popularity"] = bool(beats) if algorithm != Algorithm.POPULARITY else None
        metrics["split"] = split.describe()
        metrics["k"] = K
        if not beats and algorithm != Algorithm.POPULARITY:
            metrics["warning"] = (
                f"This version does not beat the popularity baseline on NDCG@{K} "
                f"({ours[f'ndcg@{K}']:.4f} vs {baseline[f'ndcg@{K}']:.4f}): the best-sellers serve these "
                "customers as well; consider more history, another algorithm, or popularity itself."
            )
        return metrics

    # -- artifact

    def save(self, trained: Trained, directory: Path) -> None:
        loaded: LoadedRecommender = trained.model
        arrays: dict[str, np.ndarray] = {"popularity": np.asarray(loaded.popularity, dtype=np.float32)}
        model = loaded.model
        if loaded.algorithm in (Algorithm.ALS, Algorithm.BPR):
            arrays["user_factors"] = np.asarray(model.user_factors, dtype=np.float32)
            arrays["item_factors"] = np.asarray(model.item_factors, dtype=np.float32)
        elif loaded.algorithm == Algorithm.ITEM_KNN:
            similarity = model.similarity.tocsr()
            arrays |= {
                "similarity_data": similarity.data.astype(np.float64),
                "similarity_indices": similarity.indices.astype(np.int32),
                "similarity_indptr": similarity.indptr.astype(np.int64),
            }
        seen = loaded.ids.seen
        if seen is not None and loaded.ids.history is not None:
            arrays |= {
                "seen_data": seen.data.astype(np.float32),
                "seen_indices": seen.indices.astype(np.int32),
                "seen_indptr": seen.indptr.astype(np.int64),
            }
        np.savez(directory / "arrays.npz", allow_pickle=False, **arrays)
        (directory / "ids.json").write_text(json.dumps({"customers": loaded.ids.customers, "items": loaded.ids.items}))
        meta: dict[str, Any] = {"algorithm": loaded.algorithm, "params": loaded.params}
        if "seen_data" in arrays:
            meta["history"] = loaded.ids.history
        (directory / "model.json").write_text(json.dumps(meta))

    def load(self, directory: Path, *, device: str, half: bool = False) -> LoadedRecommender:
        try:
            meta = json.loads((directory / "model.json").read_text())
            ids = json.loads((directory / "ids.json").read_text())
            with np.load(directory / "arrays.npz", allow_pickle=False) as stored:
                arrays = {name: stored[name] for name in stored.files}
        except (OSError, ValueError, KeyError) as exc:
            raise ArtifactRejected(f"Not a {ARTIFACT_FORMAT} artifact: {exc}") from exc
        algorithm = meta["algorithm"]
        params = dict(meta.get("params") or {})
        model = _implicit_model(algorithm, {**DEFAULTS.get(algorithm, {}), **params, "report_loss": False})
        if algorithm in (Algorithm.ALS, Algorithm.BPR):
            model.user_factors = arrays["user_factors"]
            model.item_factors = arrays["item_factors"]
            if algorithm == Algorithm.BPR:
                model.factors = int(arrays["item_factors"].shape[1])  # factors + the item-bias column
        elif algorithm == Algorithm.ITEM_KNN:
            from implicit.nearest_neighbours import NearestNeighboursScorer

            n_items = len(ids["items"])
            model.similarity = sp.csr_matrix(
                (arrays["similarity_data"], arrays["similarity_indices"], arrays["similarity_indptr"]),
                shape=(n_items, n_items),
            )
            model.scorer = NearestNeighboursScorer(model.similarity)
        single = None
        if model is not None:
            single = copy.copy(model)  # shallow: the factor arrays are shared, not copied
            single.num_threads = 1
        seen, history = None, meta.get("history")
        if history is not None and "seen_data" in arrays:  # versions from before 2026-12-06 have none
            seen = sp.csr_matrix(
                (arrays["seen_data"], arrays["seen_indices"], arrays["seen_indptr"]),
                shape=(len(ids["customers"]), len(ids["items"])),
            )
        return LoadedRecommender(
            algorithm=algorithm,
            model=model,
            ids=IdMaps(
                customers=list(ids["customers"]),
                items=list(ids["items"]),
                seen=seen,
                history=history if seen is not None else None,
            ),
            popularity=arrays["popularity"],
            params=params,
            single=single,
        )

    def preprocessor(self, loaded: LoadedRecommender) -> IdMaps:
        return loaded.ids

    def warm_up(self, loaded: LoadedRecommender) -> None:
        if loaded.ids.items:  # builds implicit's cached Gram matrix (ALS) and the first top-k buffers
            self.predict(loaded, [RecommendRequest(user_items=loaded.ids.live_row({loaded.ids.items[0]: 1.0}))])

    # -- serving

    def predict(self, loaded: LoadedRecommender, inputs: Sequence[Any], **options: Any) -> list[Recommended]:
        with one_blas_thread():
            return self._predict(loaded, inputs)

    def _predict(self, loaded: LoadedRecommender, inputs: Sequence[Any]) -> list[Recommended]:
        if inputs and all(isinstance(request, RecommendRequest) for request in inputs) and _batchable(inputs):
            return self._recommend_batch(loaded, list(inputs))
        out: list[Recommended] = []
        for request in inputs:
            if isinstance(request, SimilarRequest):
                out.append(self._similar(loaded, request))
            elif isinstance(request, RecommendRequest):
                out.extend(self._recommend_batch(loaded, [request]))
            else:
                raise TypeError(f"{type(request).__name__} is not a retail request")
        return out

    def _recommend_batch(self, loaded: LoadedRecommender, requests: list[RecommendRequest]) -> list[Recommended]:
        first = requests[0]
        n = first.n
        user_items = _rows_of(requests)
        filter_items = np.array(first.exclude, dtype=np.int32) if first.exclude else None
        items = np.array(first.items, dtype=np.int32) if first.items is not None else None
        if items is not None and items.size == 0:
            return [Recommended(np.empty(0, np.int64), np.empty(0, np.float32)) for _ in requests]
        if items is not None and filter_items is not None:  # implicit takes one or the other
            items, filter_items = np.setdiff1d(items, filter_items), None
        if items is not None:  # implicit 0.7 zeroes the liked items outside `items` in the row it is given
            user_items = user_items.copy()
        algorithm, model = loaded.algorithm, loaded.engine(len(requests))
        if algorithm == Algorithm.POPULARITY:
            return [_top_from_scores(loaded.popularity, r.live(), r) for r in requests]
        if algorithm == Algorithm.BPR:
            return [self._bpr_one(loaded, request, filter_items, items) for request in requests]
        # ALS solves a customer's factors from the live row, unless the row is the one the stored
        # factors were solved from (`_fold_in`: the same computation, done at training)
        stored = np.array(
            [r.stored_factors and r.customer_row is not None and algorithm == Algorithm.ALS for r in requests]
        )
        out: list[Recommended | None] = [None] * len(requests)
        for use_stored in (True, False):
            positions = np.flatnonzero(stored == use_stored)
            if positions.size == 0:
                continue
            rows = user_items if positions.size == len(requests) else user_items[positions]
            userids: Any = (
                np.array([requests[i].customer_row for i in positions], dtype=np.int64)
                if use_stored
                else np.arange(positions.size)
            )
            ids, scores = model.recommend(
                userids[0] if len(requests) == 1 else userids,
                rows,
                N=n,
                filter_already_liked_items=first.filter_seen,
                filter_items=filter_items,
                items=items,
                recalculate_user=algorithm == Algorithm.ALS and not use_stored,
            )
            ids, scores = np.atleast_2d(ids).astype(np.int64), np.atleast_2d(scores).astype(np.float32)
            keep = (ids >= 0) & np.isfinite(scores) & (scores > -1e30)  # implicit's padding: -1 ids, -inf scores
            if keep.all():  # the common case: n items for everyone, no row to shorten
                for at, position in enumerate(positions.tolist()):
                    out[position] = Recommended(items=ids[at, :n], scores=scores[at, :n])
            else:
                for at, position in enumerate(positions.tolist()):
                    out[position] = _valid(ids[at], scores[at], n)
        return [answer for answer in out if answer is not None]

    @staticmethod
    def _bpr_one(
        loaded: LoadedRecommender, request: RecommendRequest, filter_items: np.ndarray | None, items: np.ndarray | None
    ) -> Recommended:
        model = loaded.engine()
        if request.customer_row is not None:
            ids, scores = model.recommend(
                request.customer_row,
                request.live() if items is None else request.live().copy(),  # see _recommend_batch
                N=request.n,
                filter_already_liked_items=request.filter_seen,
                filter_items=filter_items,
                items=items,
            )
            return _valid(ids, scores, request.n)
        # a customer BPR never saw: their factors are the mean of the factors of what they touched
        touched = request.live().indices
        if touched.size == 0:
            return Recommended(np.empty(0, np.int64), np.empty(0, np.float32))
        user = model.item_factors[touched].mean(axis=0)
        user[-1] = 1.0  # implicit's BPR keeps the item bias in the last column, the user's is 1
        scores = model.item_factors @ user
        return _top_from_scores(scores, request.live(), request)

    def _similar(self, loaded: LoadedRecommender, request: SimilarRequest) -> Recommended:
        if loaded.algorithm == Algorithm.POPULARITY:
            return Recommended(np.empty(0, np.int64), np.empty(0, np.float32))
        exclude = np.array(sorted({*request.exclude, request.item_row}), dtype=np.int32)
        items = np.array(request.items, dtype=np.int32) if request.items is not None else None
        if items is not None:
            items = np.setdiff1d(items, exclude)
            if items.size == 0:
                return Recommended(np.empty(0, np.int64), np.empty(0, np.float32))
        ids, scores = loaded.engine().similar_items(
            request.item_row,
            N=request.n + (0 if items is not None else len(exclude)),
            filter_items=None if items is not None else exclude,
            items=items,
        )
        keep = np.isin(ids, exclude, invert=True)
        return _valid(np.asarray(ids)[keep], np.asarray(scores)[keep], request.n)

    def explain(self, loaded: LoadedRecommender, inputs: Sequence[ExplainRequest], **options: Any) -> list[Any]:
        """Per request, per item: the customer's past item rows that contributed most, with their share."""
        with one_blas_thread():
            return self._explain(loaded, inputs)

    def _explain(self, loaded: LoadedRecommender, inputs: Sequence[ExplainRequest]) -> list[Any]:
        out: list[list[list[tuple[int, float]]]] = []
        for request in inputs:
            row = request.user_items
            per_item: list[list[tuple[int, float]]] = []
            user_weights = None
            for item in request.item_rows:
                if loaded.algorithm == Algorithm.ALS and row.nnz:
                    _, contributions, user_weights = loaded.engine().explain(
                        0, row, item, user_weights=user_weights, N=request.reasons
                    )
                    pairs = [(int(past), float(score)) for past, score in contributions]
                else:
                    pairs = _similarity_reasons(loaded, row, item, request.reasons)
                per_item.append([pair for pair in pairs if pair[1] > 0])
            out.append(per_item)
        return out


def _similarity_reasons(loaded: LoadedRecommender, row: sp.csr_matrix, item: int, n: int) -> list[tuple[int, float]]:
    """Contributions as similarity x confidence of each past item (kNN's own score, BPR's cosine)."""
    past, confidence = row.indices, row.data
    if past.size == 0 or loaded.algorithm == Algorithm.POPULARITY:
        return []
    if loaded.algorithm == Algorithm.ITEM_KNN:
        similarity = np.asarray(loaded.model.similarity[past][:, [item]].todense()).ravel()
    else:
        factors = loaded.model.item_factors
        norms = np.linalg.norm(factors[past], axis=1) * np.linalg.norm(factors[item]) + 1e-9
        similarity = (factors[past] @ factors[item]) / norms
    scores = similarity * confidence
    order = np.argsort(-scores)[:n]
    return [(int(past[i]), float(scores[i])) for i in order]


def _rows_of(requests: Sequence[RecommendRequest]) -> sp.csr_matrix:
    """The requests' live rows as one matrix (the batch's shared one, unsliced, when they are all of it)."""
    shared = requests[0].user_items
    if requests[0].row is None and len(requests) == 1:
        return shared
    if all(request.user_items is shared and request.row is not None for request in requests):
        positions = np.fromiter((request.row for request in requests), np.int64, len(requests))
        if len(positions) == shared.shape[0] and np.array_equal(positions, np.arange(len(positions))):
            return shared
        return shared[positions]
    return sp.vstack([request.live() for request in requests]).tocsr()


def _batchable(requests: Sequence[RecommendRequest]) -> bool:
    first = requests[0]
    return all(
        (r.n, r.filter_seen, r.exclude, r.items) == (first.n, first.filter_seen, first.exclude, first.items)
        for r in requests
    )


def _valid(ids: np.ndarray, scores: np.ndarray, n: int) -> Recommended:
    """Drop implicit's padding (-1 ids, -inf scores) and cut at n."""
    ids, scores = np.asarray(ids), np.asarray(scores)
    keep = (ids >= 0) & np.isfinite(scores) & (scores > -1e30)
    return Recommended(items=ids[keep][:n].astype(np.int64), scores=scores[keep][:n].astype(np.float32))


def _top_from_scores(scores: np.ndarray, user_items: sp.csr_matrix, request: RecommendRequest) -> Recommended:
    scores = np.asarray(scores, dtype=np.float64).copy()
    if request.items is not None:
        allowed = np.zeros(scores.shape[0], dtype=bool)
        allowed[list(request.items)] = True
        scores[~allowed] = -np.inf
    if request.filter_seen:
        scores[user_items.indices] = -np.inf
    if request.exclude:
        scores[list(request.exclude)] = -np.inf
    order = np.argsort(-scores, kind="stable")[: request.n]
    order = order[np.isfinite(scores[order])]
    return Recommended(items=order.astype(np.int64), scores=scores[order].astype(np.float32))


class ImplicitALS(RecommenderKind):
    name = ALS_KIND
    algorithm = Algorithm.ALS


class ImplicitBPR(RecommenderKind):
    name = BPR_KIND
    algorithm = Algorithm.BPR


class ItemKNN(RecommenderKind):
    name = ITEM_KNN_KIND
    algorithm = Algorithm.ITEM_KNN


class Popularity(RecommenderKind):
    name = POPULARITY_KIND
    algorithm = Algorithm.POPULARITY


class AutoRecommender(RecommenderKind):
    """`auto`: every algorithm (each with a small grid) on the validation split; the winner is the version."""

    name = "retail.auto"
    algorithm = Algorithm.AUTO

    def candidates(self, params: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        if "search" in params:
            raise ValidationFailed("`search` needs one algorithm; auto searches itself.", fields={"search": ["auto"]})
        out: list[tuple[str, dict[str, Any]]] = []
        for algorithm in (Algorithm.ALS, Algorithm.BPR, Algorithm.ITEM_KNN, Algorithm.POPULARITY):
            grid = AUTO_GRID[algorithm]
            combos = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())] or [{}]
            out.extend((algorithm, {**DEFAULTS[algorithm], **combo}) for combo in combos)
        return out


KIND_NAMES: dict[str, str] = {
    Algorithm.ALS: ALS_KIND,
    Algorithm.BPR: BPR_KIND,
    Algorithm.ITEM_KNN: ITEM_KNN_KIND,
    Algorithm.POPULARITY: POPULARITY_KIND,
}

for _kind in (ImplicitALS(), ImplicitBPR(), ItemKNN(), Popularity(), AutoRecommender()):
    register_kind(_kind)

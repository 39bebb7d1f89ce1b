"""Offline evaluation of recommenders: the temporal leave-last-out split and top-k ranking metrics.

Pure numpy/scipy (no ORM, no model library), so the kinds, the benchmarks and the tests share it.

The split (`leave_last_out`): for every customer with more than `holdout` distinct items, the
`holdout` items they interacted with last (by the time of their first interaction with the item)
are held out as the target; everything else is training data. An item the customer had before
the cut-off is in train, never in the target, so a target is always something new to them.

The metrics, per evaluated customer, then averaged over customers (binary relevance, top-k list
`R` of length k, target set `T`):
- precision@k = |R ∩ T| / k (k, not |R|: a short list is not rewarded)
- recall@k    = |R ∩ T| / |T|
- hit_rate@k  = 1 if |R ∩ T| > 0 else 0
- ndcg@k      = Σ_{i∈hits} 1/log2(i+1) / Σ_{i=1..min(|T|,k)} 1/log2(i+1)   (rank i from 1)
- map@k       = Σ_{i∈hits} precision@i / |T|   (trec_eval's map_cut: divided by all relevant)
- coverage@k  = distinct items recommended to the evaluated customers / items in the catalogue
These are trec_eval's P_k, recall_k, ndcg_cut_k and map_cut_k; tests check them against pytrec_eval.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

K = 10
SPLIT_NAME = "temporal_leave_last_out"
METRIC_DEFINITIONS = {
    "precision": "hits in the top k / k, per customer, averaged over customers",
    "recall": "hits in the top k / held-out items, per customer, averaged",
    "ndcg": "binary-relevance DCG of the top k / ideal DCG of min(held-out, k) hits, averaged",
    "map": "sum of precision at each hit rank / held-out items (trec_eval map_cut), averaged",
    "hit_rate": "share of customers with at least one hit in the top k",
    "coverage": "distinct items recommended to the evaluated customers / items in the model",
}


@dataclass
class InteractionTable:
    """Aggregated interactions as parallel arrays: one entry per (customer, item) pair.

    `first_seen` is the pair's first event time (epoch seconds), the split's clock.
    """

    customers: np.ndarray  # int32 customer rows
    items: np.ndarray  # int32 item rows
    weights: np.ndarray  # float32 confidence
    first_seen: np.ndarray  # int64 epoch seconds
    n_customers: int
    n_items: int

    def matrix(self) -> sp.csr_matrix:
        """The customers x items confidence matrix (float32 CSR, duplicates summed)."""
        return sp.csr_matrix(
            (self.weights.astype(np.float32), (self.customers, self.items)),
            shape=(self.n_customers, self.n_items),
            dtype=np.float32,
        )

    def subset(self, mask: np.ndarray) -> InteractionTable:
        return InteractionTable(
            customers=self.customers[mask],
            items=self.items[mask],
            weights=self.weights[mask],
            first_seen=self.first_seen[mask],
            n_customers=self.n_customers,
            n_items=self.n_items,
        )

    def __len__(self) -> int:
        return int(self.customers.shape[0])


@dataclass
class Split:
    """A train table and, per evaluated customer row, the held-out item rows."""

    train: InteractionTable
    targets: dict[int, np.ndarray]
    name: str = SPLIT_NAME
    holdout: int = 1

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "holdout_per_customer": self.holdout,
            "evaluated_customers": len(self.targets),
            "train_interactions": len(self.train),
            "rule": "each customer's latest distinct items (by first interaction) held out; "
            "items already in the customer's train history are never targets",
        }


def leave_last_out(table: InteractionTable, *, holdout: int = 1) -> Split:
    """Hold out each customer's `holdout` latest new items (customers with more items than that)."""
    if holdout < 1:
        raise ValueError("holdout must be at least 1")
    # order by customer, then time, then item (deterministic ties)
    order = np.lexsort((table.items, table.first_seen, table.customers))
    customers = table.customers[order]
    counts = np.bincount(customers, minlength=table.n_customers)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = np.arange(len(order)) - starts[customers]  # 0-based rank within the customer
    from_end = counts[customers] - position  # 1 for the last
    held = (from_end <= holdout) & (counts[customers] > holdout)
    test_mask = np.zeros(len(order), dtype=bool)
    test_mask[order[held]] = True
    targets: dict[int, list[int]] = {}
    for customer, item in zip(table.customers[test_mask].tolist(), table.items[test_mask].tolist(), strict=True):
        targets.setdefault(customer, []).append(item)
    return Split(
        train=table.subset(~test_mask),
        targets={customer: np.array(sorted(items), dtype=np.int64) for customer, items in targets.items()},
        holdout=holdout,
    )


# A recommender under evaluation: (customer rows, their train rows as CSR) → item rows, shape (len, k),
# -1 where it had fewer than k to give; the already-seen train items must already be excluded.
RecommendFn = Callable[[np.ndarray, sp.csr_matrix, int], np.ndarray]

_DISCOUNT = 1.0 / np.log2(np.arange(2, 2 + 1000))


def ranking_metrics(
    recommended: dict[int, np.ndarray], targets: dict[int, np.ndarray], *, k: int = K, n_items: int
) -> dict[str, float]:
    """The metrics above for `recommended[customer]` (ranked item rows) against `targets[customer]`."""
    if not targets:
        return {f"{name}@{k}": 0.0 for name in METRIC_DEFINITIONS} | {"evaluated_customers": 0}
    precision, recall, ndcg, average_precision, hits_any = [], [], [], [], []
    shown: set[int] = set()
    for customer, target in targets.items():
        ranked = [int(item) for item in recommended.get(customer, np.empty(0))[:k] if item >= 0]
        shown.update(ranked)
        relevant = set(target.tolist())
        hit_flags = np.array([item in relevant for item in ranked], dtype=bool)
        hits = int(hit_flags.sum())
        precision.append(hits / k)
        recall.append(hits / len(relevant))
        hits_any.append(1.0 if hits else 0.0)
        dcg = float(_DISCOUNT[: len(ranked)][hit_flags].sum())
        ideal = float(_DISCOUNT[: min(len(relevant), k)].sum())
        ndcg.append(dcg / ideal)
        ranks = np.flatnonzero(hit_flags) + 1
        average_precision.append(float((np.arange(1, hits + 1) / ranks).sum()) / len(relevant))
    return {
        f"precision@{k}": float(np.mean(precision)),
        f"recall@{k}": float(np.mean(recall)),
        f"ndcg@{k}": float(np.mean(ndcg)),
        f"map@{k}": float(np.mean(average_precision)),
        f"hit_rate@{k}": float(np.mean(hits_any)),
        f"coverage@{k}": len(shown) / n_items if n_items else 0.0,
        "evaluated_customers": len(targets),
    }


def evaluate(recommend: RecommendFn, split: Split, *, k: int = K, batch: int = 2048) -> dict[str, float]:
    """Ask `recommend` for every evaluated customer's top k (train items excluded) and score it."""
    train = split.train.matrix()
    customers = np.array(sorted(split.targets), dtype=np.int64)
    recommended: dict[int, np.ndarray] = {}
    for start in range(0, len(customers), batch):
        rows = customers[start : start + batch]
        ids = recommend(rows, train[rows], k)
        for customer, ranked in zip(rows.tolist(), ids, strict=True):
            recommended[customer] = np.asarray(ranked)
    return ranking_metrics(recommended, split.targets, k=k, n_items=split.train.n_items)


def popularity_scores(matrix: sp.csr_matrix) -> np.ndarray:
    """Item popularity: distinct customers per item (ties broken by total confidence)."""
    binary = (matrix > 0).astype(np.float64)
    customers = np.asarray(binary.sum(axis=0)).ravel()
    confidence = np.asarray(matrix.sum(axis=0), dtype=np.float64).ravel()
    top = confidence.max() if confidence.size and confidence.max() > 0 else 1.0
    return customers + 0.5 * confidence / (top + 1.0)  # < 1 apart: a tie-break, never a reorder


def top_k_excluding(scores: np.ndarray, seen: sp.csr_matrix, k: int) -> np.ndarray:
    """Per row of `seen`, the top-k items by `scores` (one global vector) not already seen; -1 pads.

    Vectorised over rows: only the head of the global order can be picked (k plus the most items
    any row has seen). With row r's seen head positions sorted, s_0 < s_1 < ..., s_i - i is the
    number of unseen positions before s_i, so r's j-th unseen position (0-based) is
    j + #{i : s_i - i <= j}: one `searchsorted` over all rows at once.
    """
    n_rows = seen.shape[0]
    out = np.full((n_rows, k), -1, dtype=np.int64)
    order = np.argsort(-scores, kind="stable")
    head = order[: k + int(np.diff(seen.indptr).max(initial=0))]
    width = len(head)
    if n_rows == 0 or k <= 0 or width == 0:
        return out
    position = np.full(max(len(scores), seen.shape[1]), -1, dtype=np.int64)
    position[head] = np.arange(width)
    entry_rows = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(seen.indptr))
    entry_positions = position[seen.indices]
    in_head = entry_positions >= 0
    # each row's distinct seen head positions, sorted by (row, position)
    keys = np.unique(entry_rows[in_head] * width + entry_positions[in_head])
    rows, positions = np.divmod(keys, width)
    row_starts = np.searchsorted(rows, np.arange(n_rows))
    unseen_before = positions - (np.arange(len(keys)) - row_starts[rows])  # s_i - i, sorted within a row
    sorted_keys = rows * width + unseen_before
    ranks = np.arange(k, dtype=np.int64)
    queries = np.arange(n_rows, dtype=np.int64)[:, None] * width + ranks[None, :]
    seen_before = np.searchsorted(sorted_keys, queries, side="right") - row_starts[:, None]
    picked = ranks[None, :] + seen_before
    found = picked < width
    out[found] = head[picked[found]]
    return out


def popularity_recommend(train: sp.csr_matrix) -> RecommendFn:
    """The popularity baseline on `train`: the most popular items each customer has not had."""
    scores = popularity_scores(train)

    def recommend(rows: np.ndarray, user_items: sp.csr_matrix, k: int) -> np.ndarray:
        return top_k_excluding(scores, user_items, k)

    return recommend

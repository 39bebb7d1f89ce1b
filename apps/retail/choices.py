"""Constants and enumerations of the retail app."""

from django.db import models

DOMAIN = "retail"
FAMILY = "retail.recommender"  # every retail kind's family: one model's versions may be ALS, BPR, kNN
ALS_KIND = "retail.als"
BPR_KIND = "retail.bpr"
ITEM_KNN_KIND = "retail.item_knn"
POPULARITY_KIND = "retail.popularity"
AUTO = "auto"
DEFAULT_MODEL_NAME = "recommendations"

# bulk limits per request (bigger histories go through the CSV upload job)
MAX_BULK_ROWS = 10_000
MAX_PAGE_N = 100

# the confidence a customer's event adds to (customer, item); `rating` multiplies by its value
DEFAULT_EVENT_WEIGHTS: dict[str, float] = {"purchase": 5.0, "cart": 3.0, "click": 2.0, "view": 1.0, "rating": 1.0}
VALUE_WEIGHTED_TYPES = frozenset({"rating"})
DEFAULT_CUSTOM_WEIGHT = 1.0
DEFAULT_FALLBACK_DAYS = 30

IMPORT_EVENTS_JOB_KIND = "retail.events_import"
IMPORT_ITEMS_JOB_KIND = "retail.items_import"
PRECOMPUTE_JOB_KIND = "retail.precompute"


class Algorithm(models.TextChoices):
    AUTO = "auto", "Best on validation (auto)"
    ALS = "als", "Implicit ALS"
    BPR = "bpr", "Bayesian personalized ranking"
    ITEM_KNN = "item_knn", "Item-item cosine kNN"
    POPULARITY = "popularity", "Popularity"


KIND_OF_ALGORITHM = {
    Algorithm.ALS: ALS_KIND,
    Algorithm.BPR: BPR_KIND,
    Algorithm.ITEM_KNN: ITEM_KNN_KIND,
    Algorithm.POPULARITY: POPULARITY_KIND,
    Algorithm.AUTO: "retail.auto",  # the search files the version under the winning algorithm
}


class Source(models.TextChoices):
    MODEL = "model", "Model"
    POPULAR = "popular", "Popular"
    LATEST = "latest", "Latest"


class RecommendationKind(models.TextChoices):
    CUSTOMER = "customer", "For a customer"
    SIMILAR = "similar", "Similar items"
    BATCH = "batch", "Batch"

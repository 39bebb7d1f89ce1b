"""Enumerations of the finance app."""

from django.db import models


class ColumnType(models.TextChoices):
    NUMERIC = "numeric", "Numeric"
    CATEGORICAL = "categorical", "Categorical"


class ColumnRole(models.TextChoices):
    FEATURE = "feature", "Feature"
    TARGET = "target", "Target"
    EXCLUDED = "excluded", "Excluded"


class Decision(models.TextChoices):
    APPROVE = "approve", "Approve"
    REVIEW = "review", "Review"
    DECLINE = "decline", "Decline"


class DecisionSource(models.TextChoices):
    API = "api", "API"
    PORTAL = "portal", "Portal"
    BATCH = "batch", "Batch"


class StabilityBand(models.TextChoices):
    """The customary PSI/CSI bands (Siddiqi, "Credit Risk Scorecards")."""

    STABLE = "stable", "Stable (< 0.10)"
    WATCH = "watch", "Watch (0.10-0.25)"
    ACT = "act", "Act (> 0.25)"
    INSUFFICIENT = "insufficient_data", "Insufficient data"


DOMAIN = "finance"  # the domain name every kind, job and registry lookup of this app is filed under
MODEL_KIND = "finance.credit_xgboost"
DEFAULT_MODEL_NAME = "credit-risk"
BATCH_JOB_KIND = "finance.batch_score"
MONITORING_JOB_KIND = "finance.monitoring"

"""Finance domain rows: credit datasets, the per-organization credit policy, the decision log,
scoring batches and monitoring snapshots. Every row belongs to one organization."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from apps.finance.choices import Decision, DecisionSource, StabilityBand
from core.tenancy.models import TimeStampedModel
from ml.models import ServedByVersion


class CreditDataset(TimeStampedModel):
    """An uploaded historical-applications CSV with its inferred (and analyst-edited) schema.

    The file itself lives in the default storage under `file_path`; the database keeps only the
    profile: `schema` is a list of columns `{name, type, role, missing_rate, ...}`.
    """

    organization = models.ForeignKey("core.Organization", on_delete=models.CASCADE, related_name="credit_datasets")
    name = models.CharField(max_length=200)
    file_path = models.CharField(max_length=500)
    file_size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    rows = models.PositiveIntegerField()
    target = models.CharField(max_length=200)
    positive_label = models.CharField(max_length=100)
    positive_rate = models.FloatField()
    schema = models.JSONField(default=list)
    issues = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "-created_at"], name="fin_dataset_org_created")]

    def __str__(self) -> str:
        return f"{self.name} ({self.rows} rows)"


class CreditPolicy(TimeStampedModel):
    """An organization's score scaling (points at base odds, PDO) and decision cut-offs.

    score = offset + factor · ln(good:bad odds), factor = PDO / ln 2, so `points_at_base_odds`
    points mean `base_odds`:1 good:bad odds and every `pdo` points double the odds.
    Applicants scoring at least `approve_min_score` are approved, below `decline_below_score`
    declined, and in between referred to review.
    """

    organization = models.OneToOneField("core.Organization", on_delete=models.CASCADE, related_name="credit_policy")
    points_at_base_odds = models.PositiveIntegerField(default=600)
    base_odds = models.FloatField(default=50.0)
    pdo = models.FloatField(default=20.0)
    approve_min_score = models.IntegerField(default=570)
    decline_below_score = models.IntegerField(default=530)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["organization"]
        verbose_name_plural = "credit policies"
        constraints = [
            models.CheckConstraint(condition=models.Q(pdo__gt=0), name="fin_policy_pdo_positive"),
            models.CheckConstraint(condition=models.Q(base_odds__gt=0), name="fin_policy_odds_positive"),
            models.CheckConstraint(
                condition=models.Q(decline_below_score__lte=models.F("approve_min_score")),
                name="fin_policy_thresholds_ordered",
            ),
        ]

    def __str__(self) -> str:
        return f"Credit policy of {self.organization}"


class ScoringBatch(TimeStampedModel):
    """A CSV of applications scored in chunks by the `finance.batch_score` job.

    The model version and the policy are fixed when the batch is created, so a job that runs
    twice scores every row the same way; decisions are keyed by (batch, row) for idempotency.
    """

    organization = models.ForeignKey("core.Organization", on_delete=models.CASCADE, related_name="scoring_batches")
    job = models.OneToOneField("core.Job", on_delete=models.PROTECT, related_name="scoring_batch")
    model_version = models.ForeignKey("ml.ModelVersion", on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=200)
    input_path = models.CharField(max_length=500)
    results_path = models.CharField(max_length=500, blank=True)
    rows = models.PositiveIntegerField(default=0)
    policy = models.JSONField(default=dict)
    summary = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "scoring batches"
        indexes = [models.Index(fields=["organization", "-created_at"], name="fin_batch_org_created")]

    def __str__(self) -> str:
        return f"Batch {self.pk} ({self.name})"


class CreditDecision(ServedByVersion):
    """One immutable credit decision: inputs as entered, the exact model and policy used, the outputs.

    Everything needed to reproduce the decision is on the row: the model version (`ServedByVersion`:
    the version, its model name and number, filled with `served_by(version)`) and its artifact
    sha256, the scaling and thresholds in force, and the inputs as received.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("core.Organization", on_delete=models.CASCADE, related_name="credit_decisions")
    application_id = models.CharField(max_length=200)
    artifact_sha256 = models.CharField(max_length=64)
    inputs = models.JSONField()
    log_odds_default = models.FloatField()
    probability_of_default = models.FloatField()
    score = models.IntegerField()
    decision = models.CharField(max_length=10, choices=Decision.choices)
    reason_codes = models.JSONField(default=list, blank=True)
    policy = models.JSONField()
    source = models.CharField(max_length=10, choices=DecisionSource.choices)
    batch = models.ForeignKey(ScoringBatch, null=True, blank=True, on_delete=models.PROTECT, related_name="decisions")
    batch_row = models.PositiveIntegerField(null=True, blank=True)
    actor_label = models.CharField(max_length=150)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    request_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["organization", "-created_at"], name="fin_decision_org_created"),
            models.Index(fields=["organization", "application_id"], name="fin_decision_org_app"),
            models.Index(fields=["model_version", "-created_at"], name="fin_decision_version_created"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["batch", "batch_row"], name="fin_decision_unique_batch_row"),
            models.CheckConstraint(
                condition=models.Q(probability_of_default__gte=0, probability_of_default__lte=1),
                name="fin_decision_pd_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.application_id}: {self.decision} ({self.score})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise PermissionError("Credit decisions are immutable.")
        super().save(*args, **kwargs)


class MonitoringSnapshot(TimeStampedModel):
    """Score PSI and per-feature CSI of one model version over a window of recent decisions."""

    organization = models.ForeignKey(
        "core.Organization", on_delete=models.CASCADE, related_name="credit_monitoring_snapshots"
    )
    model_version = models.ForeignKey("ml.ModelVersion", on_delete=models.CASCADE, related_name="+")
    model_name = models.CharField(max_length=100)
    window_days = models.PositiveIntegerField()
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    decisions = models.PositiveIntegerField()
    score_psi = models.FloatField(null=True, blank=True)
    band = models.CharField(max_length=20, choices=StabilityBand.choices)
    report = models.JSONField(default=dict)
    job = models.OneToOneField(
        "core.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="credit_monitoring_snapshot"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "model_name", "-created_at"], name="fin_monitor_org_model")]

    def __str__(self) -> str:
        return f"{self.model_name} PSI {self.score_psi} ({self.window_end:%Y-%m-%d})"

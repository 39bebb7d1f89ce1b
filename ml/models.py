"""The model registry: registered models, immutable versions, aliases with history, training runs."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from core.telemetry.models import MinuteRollup
from core.tenancy.models import TimeStampedModel
from ml.choices import VersionSource

model_name_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9._-]{0,99}$", "Use lower-case letters, digits, '.', '_' or '-' (max 100)."
)
alias_name_validator = RegexValidator(r"^[a-z][a-z0-9_-]{0,49}$", "Use lower-case letters, digits, '_' or '-'.")


class RegisteredModel(TimeStampedModel):
    """A named model of one kind in one organization (e.g. `credit-risk`, kind `finance.credit_xgboost`)."""

    organization = models.ForeignKey("core.Organization", on_delete=models.CASCADE, related_name="ml_models")
    name = models.CharField(max_length=100, validators=[model_name_validator])
    kind = models.CharField(max_length=100)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["organization__slug", "name"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="ml_model_unique_name_per_org")]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class ModelVersion(models.Model):
    """One immutable trained or imported version of a registered model.

    The artifact lives in the `artifacts` storage under `artifact_path`; `manifest` lists every
    file with its sha256 and size, and is verified on every load. Rows are never updated after
    creation (aliases point at versions; versions do not change).
    """

    registered_model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    kind = models.CharField(max_length=100)
    artifact_format = models.CharField(max_length=50)
    artifact_path = models.CharField(max_length=500)
    manifest = models.JSONField(default=dict)
    artifact_sha256 = models.CharField(max_length=64, help_text="sha256 of the manifest's canonical JSON")
    params = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    input_schema = models.JSONField(default=dict, blank=True)
    model_card = models.JSONField(default=dict, blank=True)
    data_fingerprint = models.CharField(max_length=64, blank=True)
    source = models.CharField(max_length=16, choices=VersionSource.choices)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    training_run = models.OneToOneField(
        "ml.TrainingRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="version"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["registered_model", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["registered_model", "number"], name="ml_version_unique_number"),
            models.CheckConstraint(condition=models.Q(number__gte=1), name="ml_version_number_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.registered_model.name} v{self.number}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not kwargs.pop("_allow_update", False):
            raise PermissionError("Model versions are immutable.")
        super().save(*args, **kwargs)


class ModelAlias(TimeStampedModel):
    """A movable name (`production`, `staging`, ...) pointing at one version of a model."""

    registered_model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="aliases")
    name = models.CharField(max_length=50, validators=[alias_name_validator])
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="aliases")

    class Meta:
        ordering = ["registered_model", "name"]
        verbose_name_plural = "model aliases"
        constraints = [models.UniqueConstraint(fields=["registered_model", "name"], name="ml_alias_unique_name")]

    def __str__(self) -> str:
        return f"{self.registered_model.name}@{self.name} → v{self.version.number}"


class ModelAliasEvent(models.Model):
    """One move of an alias (append-only): answers "which version was live on date D"."""

    registered_model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="alias_events")
    alias = models.CharField(max_length=50)
    from_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    to_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    actor_label = models.CharField(max_length=150)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        before = f"v{self.from_version.number}" if self.from_version else "∅"
        return f"{self.registered_model.name}@{self.alias}: {before} → v{self.to_version.number}"


class TrainingRun(TimeStampedModel):
    """A training request for a model; runs as a Job on the `training` queue.

    `data` is the kind's reference to its training data (e.g. a dataset id), `live_metrics`
    the metrics reported while training (one entry per report), `version` (reverse of
    ModelVersion.training_run) the version it produced.
    """

    organization = models.ForeignKey("core.Organization", on_delete=models.CASCADE, related_name="training_runs")
    registered_model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="training_runs")
    job = models.OneToOneField("core.Job", on_delete=models.CASCADE, related_name="training_run")
    kind = models.CharField(max_length=100)
    data = models.JSONField(default=dict, blank=True)
    params = models.JSONField(default=dict, blank=True)
    promote = models.BooleanField(default=False)
    parent_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    live_metrics = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Training run {self.pk} of {self.registered_model.name}"


class ServedByVersion(models.Model):
    """Abstract base of domain rows a model version produced (a credit decision, a detection run).

    One definition for every domain: `model_version` (PROTECT: the record of which immutable
    version produced a result must never break), plus the model's name and version number copied
    onto the row so decision logs filter and print "credit-risk v3" without a join. Fill all three
    with `served_by(version)`:

        CreditDecision.objects.create(..., **served_by(version))
    """

    model_version = models.ForeignKey("ml.ModelVersion", on_delete=models.PROTECT, related_name="+")
    model_name = models.CharField(max_length=100)
    model_version_number = models.PositiveIntegerField()

    class Meta:
        abstract = True

    @property
    def model_label(self) -> str:
        return f"{self.model_name} v{self.model_version_number}"


def served_by(version: ModelVersion) -> dict[str, Any]:
    """The `ServedByVersion` fields for a row produced by `version`."""
    return {
        "model_version": version,
        "model_name": version.registered_model.name,
        "model_version_number": version.number,
    }


class PredictionRollup(MinuteRollup):
    """One minute of `ml.runtime` calls of one version, per alias it was served through and device.

    Written by the per-process telemetry flusher (`ml.telemetry`), summed over processes; `items`
    counts inputs. Kept `TELEMETRY_RETENTION_DAYS`. Alias "" means the version was asked for by
    number (pinned), not through an alias.
    """

    organization = models.ForeignKey("core.Organization", on_delete=models.CASCADE, related_name="+")
    registered_model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="+")
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="+")
    alias = models.CharField(max_length=50, blank=True)
    device = models.CharField(max_length=32)

    class Meta(MinuteRollup.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["minute", "version", "alias", "device"], name="ml_prediction_rollup_unique_minute"
            )
        ]
        indexes = [models.Index(fields=["organization", "registered_model", "minute"])]

    def __str__(self) -> str:
        return f"{self.minute:%Y-%m-%d %H:%M} version {self.version_id}@{self.alias or '-'}: {self.count}"

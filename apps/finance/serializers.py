"""Output serializers of the finance API (input serializers live next to their API class)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.finance.models import CreditDataset, CreditDecision, CreditPolicy, MonitoringSnapshot, ScoringBatch
from core.jobs.serializers import JobOutputSerializer
from ml.models import ModelVersion, RegisteredModel


class DatasetOutputSerializer(serializers.ModelSerializer[CreditDataset]):
    class Meta:
        model = CreditDataset
        fields = [
            "id",
            "name",
            "rows",
            "target",
            "positive_label",
            "positive_rate",
            "schema",
            "issues",
            "sha256",
            "file_size",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class DatasetListOutputSerializer(serializers.ModelSerializer[CreditDataset]):
    class Meta:
        model = CreditDataset
        fields = ["id", "name", "rows", "target", "positive_rate", "created_at"]
        read_only_fields = fields


class ReasonCodeSerializer(serializers.Serializer[Any]):
    code = serializers.CharField()
    feature = serializers.CharField()
    description = serializers.CharField()
    contribution = serializers.FloatField()
    value = serializers.JSONField(required=False, allow_null=True)


class ModelRefSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    version = serializers.IntegerField()


class ScoreOutputSerializer(serializers.Serializer[CreditDecision]):
    """The answer to a score request (also the short form of a logged decision)."""

    decision_id = serializers.UUIDField(source="pk")
    application_id = serializers.CharField()
    probability_of_default = serializers.FloatField()
    score = serializers.IntegerField()
    decision = serializers.CharField()
    reason_codes = ReasonCodeSerializer(many=True)
    model = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    def get_model(self, decision: CreditDecision) -> dict[str, Any]:
        return {"name": decision.model_name, "version": decision.model_version_number}


class DecisionOutputSerializer(ScoreOutputSerializer):
    """A logged decision with everything needed to reproduce it."""

    inputs = serializers.JSONField()
    log_odds_default = serializers.FloatField()
    artifact_sha256 = serializers.CharField()
    policy = serializers.JSONField()
    source = serializers.CharField()  # type: ignore[assignment]  # a field named "source", not Field.source
    batch_id = serializers.IntegerField(allow_null=True)
    batch_row = serializers.IntegerField(allow_null=True)
    actor = serializers.CharField(source="actor_label")
    request_id = serializers.CharField()


class PolicyOutputSerializer(serializers.ModelSerializer[CreditPolicy]):
    # Null while the organization still runs on the default policy (no row saved yet).
    updated_at = serializers.DateTimeField(read_only=True, allow_null=True)

    class Meta:
        model = CreditPolicy
        fields = ["points_at_base_odds", "base_odds", "pdo", "approve_min_score", "decline_below_score", "updated_at"]
        read_only_fields = fields


class VersionSummarySerializer(serializers.ModelSerializer[ModelVersion]):
    roc_auc = serializers.SerializerMethodField()
    baseline_roc_auc = serializers.SerializerMethodField()
    beats_baseline = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = [
            "number",
            "artifact_sha256",
            "data_fingerprint",
            "source",
            "created_at",
            "roc_auc",
            "baseline_roc_auc",
            "beats_baseline",
        ]
        read_only_fields = fields

    def get_roc_auc(self, version: ModelVersion) -> float | None:
        return version.metrics.get("roc_auc")

    def get_baseline_roc_auc(self, version: ModelVersion) -> float | None:
        return (version.metrics.get("baseline") or {}).get("roc_auc")

    def get_beats_baseline(self, version: ModelVersion) -> bool | None:
        return version.metrics.get("beats_baseline")


class VersionDetailSerializer(VersionSummarySerializer):
    class Meta(VersionSummarySerializer.Meta):
        fields = [*VersionSummarySerializer.Meta.fields, "params", "metrics", "input_schema", "model_card"]
        read_only_fields = fields


class CreditModelOutputSerializer(serializers.ModelSerializer[RegisteredModel]):
    aliases = serializers.SerializerMethodField()
    versions = VersionSummarySerializer(many=True, read_only=True)

    class Meta:
        model = RegisteredModel
        fields = ["name", "kind", "description", "aliases", "versions", "created_at"]
        read_only_fields = fields

    def get_aliases(self, model: RegisteredModel) -> dict[str, int]:
        return {alias.name: alias.version.number for alias in model.aliases.all()}


class BatchOutputSerializer(serializers.ModelSerializer[ScoringBatch]):
    job = JobOutputSerializer(read_only=True)
    model = serializers.SerializerMethodField()
    results_url = serializers.SerializerMethodField()

    class Meta:
        model = ScoringBatch
        fields = ["id", "name", "rows", "model", "policy", "summary", "job", "results_url", "created_at"]
        read_only_fields = fields

    def get_model(self, batch: ScoringBatch) -> dict[str, Any]:
        return {"name": batch.model_version.registered_model.name, "version": batch.model_version.number}

    def get_results_url(self, batch: ScoringBatch) -> str | None:
        return f"/api/v1/finance/batches/{batch.pk}/results/" if batch.results_path else None


class MonitoringSnapshotSerializer(serializers.ModelSerializer[MonitoringSnapshot]):
    version = serializers.IntegerField(source="model_version.number")

    class Meta:
        model = MonitoringSnapshot
        fields = [
            "id",
            "version",
            "window_days",
            "window_start",
            "window_end",
            "decisions",
            "score_psi",
            "band",
            "report",
        ]
        read_only_fields = fields

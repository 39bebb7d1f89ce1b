"""Output shapes of the retail partner API (inputs live nested in the API classes that read them)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.retail.models import Event, Item, RecommendationExport, RetailImport
from apps.retail.serving import Answer
from core.jobs.serializers import JobOutputSerializer
from ml.serializers import TrainingRunSerializer


class ItemOutputSerializer(serializers.Serializer[Item]):
    id = serializers.CharField(source="external_id", read_only=True)
    title = serializers.CharField(read_only=True)
    categories = serializers.ListField(child=serializers.CharField(), read_only=True)
    attributes = serializers.DictField(read_only=True)
    active = serializers.BooleanField(read_only=True)
    available_until = serializers.DateTimeField(read_only=True, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    class Meta:
        ref_name = "RetailItem"


class EventOutputSerializer(serializers.Serializer[Event]):
    event_id = serializers.CharField(read_only=True)
    customer = serializers.CharField(source="customer.external_id", read_only=True)
    item = serializers.CharField(source="item.external_id", read_only=True)
    type = serializers.CharField(read_only=True)
    value = serializers.FloatField(read_only=True, allow_null=True)
    timestamp = serializers.DateTimeField(read_only=True)
    recomm_id = serializers.UUIDField(read_only=True, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)

    class Meta:
        ref_name = "RetailEvent"


class RowErrorSerializer(serializers.Serializer[Any]):
    index = serializers.IntegerField()
    id = serializers.JSONField(allow_null=True)
    fields = serializers.DictField(child=serializers.CharField())  # type: ignore[assignment]  # a field named like Serializer.fields

    class Meta:
        ref_name = "RetailRowError"


class BatchResultSerializer(serializers.Serializer[Any]):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    refused = serializers.IntegerField()
    errors = RowErrorSerializer(many=True)  # type: ignore[assignment]  # a field named like Serializer.errors

    class Meta:
        ref_name = "RetailBatchResult"


class BecauseSerializer(serializers.Serializer[Any]):
    id = serializers.CharField()
    title = serializers.CharField()
    share = serializers.FloatField()

    class Meta:
        ref_name = "RetailBecause"


class ShownItemSerializer(serializers.Serializer[Any]):
    id = serializers.CharField()
    title = serializers.CharField()
    score = serializers.FloatField(allow_null=True)
    source = serializers.CharField(help_text="model, popular or latest")  # type: ignore[assignment]  # a field named like Field's own attribute
    reason = serializers.CharField(allow_null=True)
    because = BecauseSerializer(many=True)

    class Meta:
        ref_name = "RetailShownItem"


class ServedModelSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    version = serializers.IntegerField()
    alias = serializers.CharField()

    class Meta:
        ref_name = "RetailServedModel"


class AnswerSerializer(serializers.Serializer[Answer]):
    recomm_id = serializers.UUIDField()
    model = serializers.SerializerMethodField()
    items = ShownItemSerializer(many=True)

    class Meta:
        ref_name = "RetailRecommendations"

    def get_model(self, answer: Answer) -> dict[str, Any] | None:
        if answer.version is None:
            return None
        return {"name": answer.version.registered_model.name, "version": answer.version.number, "alias": answer.alias}


def answer_data(answer: Answer) -> dict[str, Any]:
    """The answer as JSON, built directly (the hot path: a serializer per item costs ~50 µs each)."""
    version = answer.version
    return {
        "recomm_id": str(answer.recomm_id),
        "model": None
        if version is None
        else {"name": version.registered_model.name, "version": version.number, "alias": answer.alias},
        "items": [
            {
                "id": shown.id,
                "title": shown.title,
                "score": shown.score,
                "source": shown.source,
                "reason": shown.reason,
                "because": shown.because,
            }
            for shown in answer.items
        ],
    }


class RetailTrainingRunSerializer(TrainingRunSerializer):
    since = serializers.SerializerMethodField()

    class Meta:
        ref_name = "RetailTrainingRun"

    def get_since(self, run: Any) -> str | None:
        return run.data.get("since")


class ImportOutputSerializer(serializers.Serializer[RetailImport]):
    id = serializers.IntegerField(read_only=True)
    target = serializers.CharField(read_only=True)
    file_size = serializers.IntegerField(read_only=True)
    rows = serializers.IntegerField(read_only=True)
    created = serializers.IntegerField(read_only=True)
    duplicates = serializers.IntegerField(read_only=True)
    refused = serializers.IntegerField(read_only=True)
    errors = serializers.JSONField(read_only=True)  # type: ignore[assignment]  # a field named like Serializer.errors
    job = JobOutputSerializer(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)

    class Meta:
        ref_name = "RetailImport"


class ExportOutputSerializer(serializers.Serializer[RecommendationExport]):
    id = serializers.IntegerField(read_only=True)
    model_name = serializers.CharField(read_only=True)
    model_version_number = serializers.IntegerField(read_only=True, allow_null=True)
    n = serializers.IntegerField(read_only=True)
    customers = serializers.IntegerField(read_only=True)
    download_url = serializers.SerializerMethodField()
    job = JobOutputSerializer(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)

    class Meta:
        ref_name = "RetailExport"

    def get_download_url(self, export: RecommendationExport) -> str | None:
        return f"/api/v1/retail/exports/{export.pk}/download/" if export.file_path else None

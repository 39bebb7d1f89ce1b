"""Output shapes of the model registry's partner API, shared by its API classes.

Input serializers live nested in the API classes that read them (`ml/apis.py`); the outputs here
are reused by several endpoints (a version appears in the model list, its detail and the import
answer). Every field is explicit and read-only.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.jobs.serializers import JobOutputSerializer
from ml.models import ModelAliasEvent, ModelVersion, RegisteredModel, TrainingRun


class ModelVersionSummarySerializer(serializers.Serializer[ModelVersion]):
    """One version inside a model: enough to pick one, not its full record."""

    # `source` and `parent` are also attributes of DRF's Field; as declared fields they are
    # collected by the serializer metaclass, which the type stubs cannot know.
    number = serializers.IntegerField(read_only=True)
    source = serializers.CharField(read_only=True)  # type: ignore[assignment]  # a field named like Field's own attribute (see above)
    metrics = serializers.JSONField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    artifact_sha256 = serializers.CharField(read_only=True)

    class Meta:
        ref_name = "MlModelVersionSummary"


class RegisteredModelSerializer(serializers.Serializer[RegisteredModel]):
    """A registered model with its versions (newest first) and its aliases as {alias: version number}."""

    name = serializers.CharField(read_only=True)
    kind = serializers.CharField(read_only=True)
    description = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)
    versions = ModelVersionSummarySerializer(many=True, read_only=True)
    aliases = serializers.SerializerMethodField()

    class Meta:
        ref_name = "MlRegisteredModel"

    @extend_schema_field(
        {"type": "object", "additionalProperties": {"type": "integer"}, "example": {"production": 2, "staging": 3}}
    )
    def get_aliases(self, model: RegisteredModel) -> dict[str, int]:
        # `aliases` (with their versions) are prefetched by `registered_model_list`.
        return {alias.name: alias.version.number for alias in model.aliases.all()}


class ModelVersionDetailSerializer(serializers.Serializer[ModelVersion]):
    """Everything a version records: how it was made, what it expects, and its artifact manifest."""

    model = serializers.CharField(source="registered_model.name", read_only=True)
    number = serializers.IntegerField(read_only=True)
    kind = serializers.CharField(read_only=True)
    source = serializers.CharField(read_only=True)  # type: ignore[assignment]  # a field named like Field's own attribute (see above)
    artifact_format = serializers.CharField(read_only=True)
    artifact_sha256 = serializers.CharField(read_only=True)
    manifest = serializers.JSONField(read_only=True)
    params = serializers.JSONField(read_only=True)
    metrics = serializers.JSONField(read_only=True)
    input_schema = serializers.JSONField(read_only=True)
    model_card = serializers.JSONField(read_only=True)
    data_fingerprint = serializers.CharField(read_only=True)
    parent = serializers.IntegerField(source="parent.number", read_only=True, allow_null=True)  # type: ignore[assignment]  # a field named like Field's own attribute (see above)
    training_run = serializers.IntegerField(source="training_run_id", read_only=True, allow_null=True)
    aliases = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField(read_only=True)

    class Meta:
        ref_name = "MlModelVersionDetail"

    def get_aliases(self, version: ModelVersion) -> list[str]:
        """The aliases that point at this version right now."""
        return sorted(alias.name for alias in version.aliases.all())


class ModelAliasEventSerializer(serializers.Serializer[ModelAliasEvent]):
    """One move of an alias: `from` (null for the first) → `to`, by whom, why, when."""

    alias = serializers.CharField(read_only=True)
    to = serializers.IntegerField(source="to_version.number", read_only=True)
    actor = serializers.CharField(source="actor_label", read_only=True)
    reason = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)

    class Meta:
        ref_name = "MlModelAliasEvent"

    def get_fields(self) -> dict[str, Any]:
        # `from` is a Python keyword, so it cannot be declared as a class attribute.
        fields = super().get_fields()
        ordered: dict[str, Any] = {"alias": fields.pop("alias")}
        ordered["from"] = serializers.IntegerField(source="from_version.number", read_only=True, allow_null=True)
        ordered.update(fields)
        return ordered


class TrainingRunVersionSerializer(serializers.Serializer[ModelVersion]):
    """The version a finished training run produced."""

    number = serializers.IntegerField(read_only=True)
    metrics = serializers.JSONField(read_only=True)

    class Meta:
        ref_name = "MlTrainingRunVersion"


class TrainingRunSerializer(serializers.Serializer[TrainingRun]):
    """A training run as every domain's API shows it: its job (poll it for progress), the live
    metrics reported while training, and once done the version it produced.

    A domain subclasses it only to add what is its own (e.g. which dataset it trained on) and
    names its subclass's `Meta.ref_name`.
    """

    id = serializers.IntegerField(source="pk", read_only=True)
    model = serializers.CharField(source="registered_model.name", read_only=True)
    kind = serializers.CharField(read_only=True)
    status = serializers.CharField(source="job.status", read_only=True)
    params = serializers.JSONField(read_only=True)
    promote = serializers.BooleanField(read_only=True)
    parent_version = serializers.IntegerField(source="parent_version.number", read_only=True, allow_null=True)
    live_metrics = serializers.JSONField(read_only=True)
    version = serializers.SerializerMethodField()
    job = JobOutputSerializer(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)

    class Meta:
        ref_name = "MlTrainingRun"

    @extend_schema_field(TrainingRunVersionSerializer(allow_null=True))
    def get_version(self, run: TrainingRun) -> dict[str, Any] | None:
        try:
            version = run.version
        except ObjectDoesNotExist:  # the reverse one-to-one raises while the run has no version
            return None
        return {"number": version.number, "metrics": version.metrics}

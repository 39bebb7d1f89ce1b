"""The finance partner REST API (`/api/v1/finance/…`). Thin: validate, call one service/selector, serialize."""

from __future__ import annotations

from typing import Any

from django.core.files.storage import default_storage
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from apps.finance import batch_scoring, monitoring, selectors, services
from apps.finance.choices import DEFAULT_MODEL_NAME, DOMAIN, Decision
from apps.finance.serializers import (
    BatchOutputSerializer,
    CreditModelOutputSerializer,
    DatasetListOutputSerializer,
    DatasetOutputSerializer,
    DecisionOutputSerializer,
    MonitoringSnapshotSerializer,
    PolicyOutputSerializer,
    ScoreOutputSerializer,
    VersionDetailSerializer,
)
from core.api.fields import RowIdField
from core.api.schema import conflict, referenced_not_found
from core.api.views import OrgAPIView
from core.jobs.serializers import JobOutputSerializer
from ml.models import TrainingRun
from ml.selectors import model_version_get, registered_model_get, registered_model_list, training_run_get
from ml.serializers import TrainingRunSerializer


class FinanceApi(OrgAPIView):
    required_scope = "finance"


# --- Datasets --------------------------------------------------------------------------------------


class DatasetListApi(FinanceApi):
    parser_classes = [MultiPartParser, FormParser]

    class InputSerializer(serializers.Serializer[Any]):
        file = serializers.FileField(allow_empty_file=True)
        name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
        target = serializers.CharField(max_length=200)
        positive_label = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")

    @extend_schema(responses=DatasetListOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        return self.paginate(request, selectors.dataset_list(org=self.org), DatasetListOutputSerializer)

    @extend_schema(request=InputSerializer, responses={201: DatasetOutputSerializer})
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        dataset = services.dataset_create(
            actor=self.actor,
            upload=values["file"],
            name=values["name"],
            target=values["target"],
            positive_label=values["positive_label"],
        )
        return Response(DatasetOutputSerializer(dataset).data, status=status.HTTP_201_CREATED)


class DatasetDetailApi(FinanceApi):
    class InputSerializer(serializers.Serializer[Any]):
        columns = serializers.ListField(child=serializers.DictField(), allow_empty=False)

    @extend_schema(responses=DatasetOutputSerializer)
    def get(self, request: Request, dataset_id: int) -> Response:
        return Response(DatasetOutputSerializer(selectors.dataset_get(org=self.org, dataset_id=dataset_id)).data)

    @extend_schema(request=InputSerializer, responses=DatasetOutputSerializer)
    def patch(self, request: Request, dataset_id: int) -> Response:
        """Edit the schema: `{"columns": [{"name", "type"?, "role"?, "description"?, ...}]}`.

        Applies to future training runs; trained versions keep their own schema.
        """
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        dataset = selectors.dataset_get(org=self.org, dataset_id=dataset_id)
        dataset = services.dataset_schema_update(
            actor=self.actor, dataset=dataset, columns=data.validated_data["columns"]
        )
        return Response(DatasetOutputSerializer(dataset).data)


# --- Training --------------------------------------------------------------------------------------


class TrainingRunOutputSerializer(TrainingRunSerializer):
    """The registry's training run plus the credit dataset it trained on.

    `version` is the produced version's number here (finance clients read an integer since the
    first release); the registry's shape with its metrics is `GET /api/v1/ml/models/{name}/versions/{n}/`.
    """

    dataset = serializers.SerializerMethodField()
    version = serializers.SerializerMethodField()  # an int here, see the docstring

    class Meta:
        ref_name = "FinanceTrainingRun"

    def get_dataset(self, run: TrainingRun) -> int | None:
        dataset_id = run.data.get("dataset_id")
        return int(dataset_id) if dataset_id is not None else None

    def get_version(self, run: TrainingRun) -> int | None:  # type: ignore[override]  # see the class docstring
        version = getattr(run, "version", None)
        return version.number if version is not None else None


class TrainingRunListApi(FinanceApi):
    class InputSerializer(serializers.Serializer[Any]):
        dataset = RowIdField()
        model = serializers.CharField(max_length=100, required=False, default=DEFAULT_MODEL_NAME)
        params = serializers.DictField(required=False, default=dict)
        promote = serializers.BooleanField(required=False, default=False)

    @extend_schema(
        request=InputSerializer,
        responses={202: TrainingRunOutputSerializer, 404: referenced_not_found("the `dataset`")},
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        dataset = selectors.dataset_get(org=self.org, dataset_id=data.validated_data["dataset"])
        run = services.training_start(
            actor=self.actor,
            dataset=dataset,
            model_name=data.validated_data["model"],
            params=data.validated_data["params"],
            promote=data.validated_data["promote"],
        )
        run = training_run_get(org=self.org, run_id=run.pk)
        return Response(TrainingRunOutputSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class TrainingRunDetailApi(FinanceApi):
    @extend_schema(responses=TrainingRunOutputSerializer)
    def get(self, request: Request, run_id: int) -> Response:
        run = training_run_get(org=self.org, run_id=run_id, domain=DOMAIN)
        return Response(TrainingRunOutputSerializer(run).data)


# --- Models, versions, promotion, monitoring ------------------------------------------------------------


class ModelListApi(FinanceApi):
    @extend_schema(responses=CreditModelOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        return self.paginate(request, registered_model_list(org=self.org, domain=DOMAIN), CreditModelOutputSerializer)


class ModelDetailApi(FinanceApi):
    @extend_schema(responses=CreditModelOutputSerializer)
    def get(self, request: Request, name: str) -> Response:
        return Response(CreditModelOutputSerializer(registered_model_get(org=self.org, name=name, domain=DOMAIN)).data)


class ModelVersionDetailApi(FinanceApi):
    @extend_schema(responses=VersionDetailSerializer)
    def get(self, request: Request, name: str, number: int) -> Response:
        registered_model_get(org=self.org, name=name, domain=DOMAIN)
        return Response(VersionDetailSerializer(model_version_get(org=self.org, name=name, number=number)).data)


class ModelPromoteApi(FinanceApi):
    class InputSerializer(serializers.Serializer[Any]):
        version = serializers.IntegerField(min_value=1)
        reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")

    @extend_schema(request=InputSerializer, responses=CreditModelOutputSerializer)
    def post(self, request: Request, name: str) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.model_promote(
            actor=self.actor,
            name=name,
            version_number=data.validated_data["version"],
            reason=data.validated_data["reason"],
        )
        return Response(CreditModelOutputSerializer(registered_model_get(org=self.org, name=name, domain=DOMAIN)).data)


class ModelMonitoringApi(FinanceApi):
    class FilterSerializer(serializers.Serializer[Any]):
        window_days = serializers.IntegerField(
            min_value=1, max_value=3650, required=False, default=30, help_text="Recent decisions window (days)."
        )
        version = serializers.IntegerField(min_value=1, required=False, help_text="Version (default: production).")

    class InputSerializer(serializers.Serializer[Any]):
        window_days = serializers.IntegerField(
            min_value=1, max_value=3650, required=False, help_text="Recent decisions window (days, default 30)."
        )

    @extend_schema(
        parameters=[FilterSerializer],
        responses=inline_serializer(
            "CreditMonitoring",
            {"current": serializers.JSONField(), "history": MonitoringSnapshotSerializer(many=True)},
        ),
    )
    def get(self, request: Request, name: str) -> Response:
        """PSI/CSI computed now over the window, plus the stored snapshots (PSI over time)."""
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        current = monitoring.monitoring_report(
            org=self.org,
            name=name,
            window_days=filters.validated_data["window_days"],
            version_number=filters.validated_data.get("version"),
        )
        history = selectors.monitoring_history(org=self.org, name=name)
        return Response({"current": current, "history": MonitoringSnapshotSerializer(history, many=True).data})

    @extend_schema(
        parameters=[OpenApiParameter("window_days", int, description="Recent decisions window (days, default 30).")],
        request=InputSerializer,
        responses={202: JobOutputSerializer},
    )
    def post(self, request: Request, name: str) -> Response:
        """Compute and store a snapshot on a worker. `window_days` in the query or the body (query wins)."""
        query = self.InputSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        body = self.InputSerializer(data=request.data if isinstance(request.data, dict) else {})
        body.is_valid(raise_exception=True)
        window = query.validated_data.get("window_days") or body.validated_data.get("window_days") or 30
        job = monitoring.monitoring_enqueue(actor=self.actor, name=name, window_days=window)
        job.refresh_from_db()
        return Response(JobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)


# --- Policy ----------------------------------------------------------------------------------------


class PolicyApi(FinanceApi):
    class InputSerializer(serializers.Serializer[Any]):
        points_at_base_odds = serializers.IntegerField(min_value=1, max_value=10_000, required=False)
        base_odds = serializers.FloatField(min_value=0.0001, max_value=1e6, required=False)
        pdo = serializers.FloatField(min_value=0.1, max_value=1000, required=False)
        approve_min_score = serializers.IntegerField(min_value=-10_000, max_value=20_000, required=False)
        decline_below_score = serializers.IntegerField(min_value=-10_000, max_value=20_000, required=False)

    @extend_schema(responses=PolicyOutputSerializer)
    def get(self, request: Request) -> Response:
        return Response(PolicyOutputSerializer(selectors.policy_get(org=self.org)).data)

    @extend_schema(request=InputSerializer, responses=PolicyOutputSerializer)
    def patch(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        policy = services.policy_update(actor=self.actor, **data.validated_data)
        return Response(PolicyOutputSerializer(policy).data)

    put = patch


# --- Scores and decisions ------------------------------------------------------------------------------


class ScoreApi(FinanceApi):
    parser_classes = [JSONParser]

    class InputSerializer(serializers.Serializer[Any]):
        model = serializers.CharField(max_length=100, required=False, allow_blank=True)
        version = serializers.IntegerField(min_value=1, required=False)
        application_id = serializers.CharField(max_length=200)
        features = serializers.DictField()
        explain = serializers.BooleanField(required=False, default=False)

    @extend_schema(
        request=InputSerializer,
        responses={200: ScoreOutputSerializer, 404: referenced_not_found("the `model` (or its `version`)")},
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        decision = services.score_create(
            actor=self.actor,
            application_id=values["application_id"],
            features=values["features"],  # DictField leaves values as entered (no child coercion)
            model_name=values.get("model") or None,
            version_number=values.get("version"),
            explain=values["explain"],
        )
        return Response(ScoreOutputSerializer(decision).data)


class DecisionListApi(FinanceApi):
    class FilterSerializer(serializers.Serializer[Any]):
        application_id = serializers.CharField(required=False)
        decision = serializers.ChoiceField(choices=Decision.choices, required=False)
        model = serializers.CharField(required=False)
        version = serializers.IntegerField(required=False)
        batch_id = RowIdField(required=False)
        created_after = serializers.DateTimeField(required=False)
        created_before = serializers.DateTimeField(required=False)
        min_score = serializers.IntegerField(required=False)
        max_score = serializers.IntegerField(required=False)

    @extend_schema(parameters=[FilterSerializer], responses=DecisionOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        decisions = selectors.decision_list(org=self.org, **filters.validated_data)
        response = self.paginate(request, decisions, DecisionOutputSerializer)
        services.decisions_read_audit(
            actor=self.actor, decision_ids=[row["decision_id"] for row in response.data["results"]]
        )
        return response


class DecisionDetailApi(FinanceApi):
    @extend_schema(responses=DecisionOutputSerializer)
    def get(self, request: Request, decision_id: str) -> Response:
        return Response(
            DecisionOutputSerializer(services.decision_read(actor=self.actor, decision_id=decision_id)).data
        )


class DecisionReplayApi(FinanceApi):
    @extend_schema(
        request=None,
        responses=inline_serializer(
            "CreditDecisionReplay",
            {
                "decision_id": serializers.UUIDField(),
                "reproduced": serializers.BooleanField(),
                "differences": serializers.ListField(child=serializers.CharField()),
                "artifact_sha256": serializers.CharField(),
                "original": serializers.JSONField(),
                "replayed": serializers.JSONField(),
            },
        ),
    )
    def post(self, request: Request, decision_id: str) -> Response:
        """Re-score a logged decision with its own model version, inputs and policy."""
        decision = selectors.decision_get(org=self.org, decision_id=decision_id)
        return Response(services.decision_replay(actor=self.actor, decision=decision))


# --- Batches ---------------------------------------------------------------------------------------


class BatchListApi(FinanceApi):
    parser_classes = [MultiPartParser, FormParser]

    class InputSerializer(serializers.Serializer[Any]):
        file = serializers.FileField(allow_empty_file=True)
        model = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
        name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")

    @extend_schema(responses=BatchOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        return self.paginate(request, selectors.batch_list(org=self.org), BatchOutputSerializer)

    @extend_schema(
        request=InputSerializer, responses={202: BatchOutputSerializer, 404: referenced_not_found("the `model`")}
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        batch = batch_scoring.batch_create(
            actor=self.actor,
            upload=data.validated_data["file"],
            model_name=data.validated_data["model"] or None,
            name=data.validated_data["name"],
        )
        batch = selectors.batch_get(org=self.org, batch_id=batch.pk)
        return Response(BatchOutputSerializer(batch).data, status=status.HTTP_202_ACCEPTED)


class BatchDetailApi(FinanceApi):
    @extend_schema(responses=BatchOutputSerializer)
    def get(self, request: Request, batch_id: int) -> Response:
        return Response(BatchOutputSerializer(selectors.batch_get(org=self.org, batch_id=batch_id)).data)


class BatchResultsApi(FinanceApi):
    @extend_schema(
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.BINARY, description="One row per input row, scored."),
            409: conflict("`not_ready`: the batch has no results yet; poll its job until it has succeeded."),
        }
    )
    def get(self, request: Request, batch_id: int) -> FileResponse:
        batch = batch_scoring.batch_results_read(
            actor=self.actor, batch=selectors.batch_get(org=self.org, batch_id=batch_id)
        )
        return FileResponse(
            default_storage.open(batch.results_path, "rb"),
            as_attachment=True,
            filename=f"batch-{batch.pk}-results.csv",
            content_type="text/csv",
        )

"""The retail partner REST API (`/api/v1/retail/…`). Thin: validate, call one service/selector, serialize.

Items and customers are addressed by the merchant's own ids (`/items/{id}/`); ids with a `/` are
not addressable in a path (send them URL-encoded and without slashes).
"""

from __future__ import annotations

from typing import Any

from django.core.files.storage import default_storage
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser, FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from apps.retail import ingest, reports, selectors, services, serving
from apps.retail.choices import DEFAULT_MODEL_NAME, DOMAIN, MAX_PAGE_N, Algorithm
from apps.retail.serializers import (
    AnswerSerializer,
    BatchResultSerializer,
    EventOutputSerializer,
    ExportOutputSerializer,
    ImportOutputSerializer,
    ItemOutputSerializer,
    RetailTrainingRunSerializer,
    answer_data,
)
from core.api.schema import referenced_not_found
from core.api.views import OrgAPIView
from core.errors import NotFound, ValidationFailed
from ml.selectors import (
    model_alias_history,
    model_version_get,
    registered_model_get,
    registered_model_list,
    training_run_get,
)
from ml.serializers import ModelAliasEventSerializer, ModelVersionDetailSerializer, RegisteredModelSerializer
from ml.services import model_alias_set


class NDJSONParser(BaseParser):
    """`application/x-ndjson`: one JSON object per line (what log shippers and stream exporters send)."""

    media_type = "application/x-ndjson"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return ingest.ndjson_rows(stream.read())
        except ValidationFailed as exc:
            raise ParseError(exc.message) from exc


class RetailApi(OrgAPIView):
    required_scope = DOMAIN


def _batch_response(result: ingest.BatchResult) -> Response:
    """200 with the counts; 400 (same body, in the error shape) when every row was refused."""
    body = result.as_dict()
    if result.refused and not (result.created or result.updated or result.duplicates):
        raise ValidationFailed(
            f"All {result.refused} rows were refused; see `fields` per row.",
            code="all_rows_refused",
            fields={f"{error['index']}": [f"{k}: {v}" for k, v in error["fields"].items()] for error in result.errors},
        )
    return Response(body)


# --- Catalogue ----------------------------------------------------------------------------------


class ItemListApi(RetailApi):
    parser_classes = [JSONParser]

    class FilterSerializer(serializers.Serializer[Any]):
        search = serializers.CharField(required=False, default="", allow_blank=True, max_length=200)
        category = serializers.CharField(required=False, default="", allow_blank=True, max_length=200)
        active = serializers.BooleanField(required=False, allow_null=True, default=None)

    @extend_schema(parameters=[FilterSerializer], responses=ItemOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        items = selectors.item_list(org=self.org, **filters.validated_data)
        return self.paginate(request, items, ItemOutputSerializer)

    @extend_schema(
        request=inline_serializer(
            "RetailItemUpsert",
            {
                "id": serializers.CharField(max_length=200, help_text="The merchant's own item id."),
                "title": serializers.CharField(max_length=500, required=False, allow_blank=True, allow_null=True),
                "categories": serializers.ListField(child=serializers.CharField(max_length=200), required=False),
                "attributes": serializers.DictField(required=False),
                "active": serializers.BooleanField(required=False, default=True),
                "available_until": serializers.DateTimeField(required=False, allow_null=True),
            },
            many=True,
        ),
        responses=BatchResultSerializer,
    )
    def put(self, request: Request) -> Response:
        """Bulk upsert of up to 10,000 items.

        Each item: `{"id", "title", "categories", "attributes", "active", "available_until"}`.

        Fields a row leaves out keep their stored value (defaults for a new item). Each row is
        independent: a bad one is listed in `errors` with its index, the rest are stored.
        """
        rows = ingest.rows_check(request.data, what="items")
        return _batch_response(ingest.items_upsert(actor=self.actor, rows=rows))


class ItemDetailApi(RetailApi):
    parser_classes = [JSONParser]

    @extend_schema(responses=ItemOutputSerializer)
    def get(self, request: Request, item_id: str) -> Response:
        return Response(ItemOutputSerializer(selectors.item_get(org=self.org, item_id=item_id)).data)

    @extend_schema(
        request=inline_serializer("RetailItemPatch", {"title": serializers.CharField(required=False)}),
        responses=ItemOutputSerializer,
    )
    def patch(self, request: Request, item_id: str) -> Response:
        if not isinstance(request.data, dict):
            raise ValidationFailed("Send a JSON object of the fields to change.", code="not_an_object")
        item = selectors.item_get(org=self.org, item_id=item_id)
        item = ingest.item_update(actor=self.actor, item=item, changes=request.data)
        return Response(ItemOutputSerializer(item).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, item_id: str) -> Response:
        ingest.item_delete(actor=self.actor, item=selectors.item_get(org=self.org, item_id=item_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class UploadApi(RetailApi):
    parser_classes = [MultiPartParser, FormParser]
    target = "events"

    class InputSerializer(serializers.Serializer[Any]):
        file = serializers.FileField()

    @extend_schema(request=InputSerializer, responses={202: ImportOutputSerializer})
    def post(self, request: Request) -> Response:
        """Upload a CSV for a background import job (poll the import, or its job, for progress)."""
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        record = ingest.import_start(actor=self.actor, target=self.target, upload=data.validated_data["file"])
        record = selectors.import_get(org=self.org, import_id=record.pk)
        return Response(ImportOutputSerializer(record).data, status=status.HTTP_202_ACCEPTED)


class ItemImportApi(UploadApi):
    """CSV columns: `id` (required), `title`, `categories` (separated by `|`), `attributes` (JSON),
    `active`, `available_until`."""

    target = "items"


class EventImportApi(UploadApi):
    """CSV columns: `event_id`, `customer`, `item`, `type` (required), `value`, `timestamp`, `recomm_id`."""

    target = "events"


class ImportListApi(RetailApi):
    @extend_schema(responses=ImportOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        return self.paginate(request, selectors.import_list(org=self.org), ImportOutputSerializer)


class ImportDetailApi(RetailApi):
    @extend_schema(responses=ImportOutputSerializer)
    def get(self, request: Request, import_id: int) -> Response:
        return Response(ImportOutputSerializer(selectors.import_get(org=self.org, import_id=import_id)).data)


# --- Events -------------------------------------------------------------------------------------


class EventListApi(RetailApi):
    parser_classes = [JSONParser, NDJSONParser]

    class FilterSerializer(serializers.Serializer[Any]):
        customer = serializers.CharField(required=False, default="", allow_blank=True, max_length=200)
        item = serializers.CharField(required=False, default="", allow_blank=True, max_length=200)
        type = serializers.CharField(required=False, default="", allow_blank=True, max_length=50)
        recomm_id = serializers.UUIDField(required=False, allow_null=True, default=None)

    @extend_schema(parameters=[FilterSerializer], responses=EventOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        values = filters.validated_data
        events = selectors.event_list(
            org=self.org,
            customer=values["customer"],
            item=values["item"],
            event_type=values["type"],
            recomm_id=values["recomm_id"],
        )
        return self.paginate(request, events, EventOutputSerializer)

    @extend_schema(
        request=inline_serializer(
            "RetailEventIn",
            {
                "event_id": serializers.CharField(),
                "customer": serializers.CharField(),
                "item": serializers.CharField(),
                "type": serializers.CharField(),
                "value": serializers.FloatField(required=False),
                "timestamp": serializers.DateTimeField(required=False),
                "recomm_id": serializers.UUIDField(required=False),
            },
            many=True,
        ),
        responses=BatchResultSerializer,
    )
    def post(self, request: Request) -> Response:
        """Up to 10,000 events (JSON array or NDJSON). Idempotent by `event_id`: a retry stores nothing twice.

        `created` counts stored rows, `duplicates` rows whose `event_id` was already stored, `refused`
        bad rows (listed in `errors`, e.g. an item not in the catalogue). Customers are created on
        first sight. `timestamp` defaults to now; `recomm_id` attributes the event to a recommendation.
        """
        rows = ingest.rows_check(request.data, what="events")
        return _batch_response(ingest.events_ingest(actor=self.actor, rows=rows))


# --- Customers and recommendations --------------------------------------------------------------


class FiltersSerializer(serializers.Serializer[Any]):
    n = serializers.IntegerField(min_value=1, max_value=MAX_PAGE_N, required=False, default=10)
    offset = serializers.IntegerField(min_value=0, max_value=10_000, required=False, default=0)
    category = serializers.CharField(required=False, default="", allow_blank=True, max_length=200)
    exclude = serializers.CharField(
        required=False,
        default="",
        allow_blank=True,
        max_length=100_000,
        help_text="Comma-separated item ids never to return.",
    )
    model = serializers.CharField(required=False, default="", allow_blank=True, max_length=100)
    alias = serializers.RegexField(
        r"^([a-z][a-z0-9_-]{0,49})?$", required=False, default="", allow_blank=True, max_length=50
    )

    class Meta:
        ref_name = "RetailFilters"

    def filters(self) -> serving.Filters:
        values = self.validated_data
        exclude = tuple(part for part in (piece.strip() for piece in values["exclude"].split(",")) if part)
        if len(exclude) > 1000:
            raise ValidationFailed("At most 1,000 excluded items.", fields={"exclude": ["Too many."]})
        return serving.Filters(
            n=values["n"],
            offset=values["offset"],
            category=values["category"],
            exclude=exclude,
            include_seen=bool(values.get("include_seen", False)),
        )


class CustomerFiltersSerializer(FiltersSerializer):
    include_seen = serializers.BooleanField(required=False, default=False)
    explain = serializers.BooleanField(required=False, default=False)

    class Meta:
        ref_name = "RetailCustomerFilters"


class CustomerListApi(RetailApi):
    class FilterSerializer(serializers.Serializer[Any]):
        search = serializers.CharField(required=False, default="", allow_blank=True, max_length=200)

    @extend_schema(
        parameters=[FilterSerializer],
        responses=inline_serializer(
            "RetailCustomer",
            {
                "id": serializers.CharField(),
                "events": serializers.IntegerField(),
                "last_event": serializers.DateTimeField(),
            },
            many=True,
        ),
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        customers = selectors.customer_list(org=self.org, search=filters.validated_data["search"])
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(customers, request, view=self) or []
        return paginator.get_paginated_response(
            [
                {"id": c.external_id, "events": c.event_count, "last_event": c.last_event, "first_seen": c.created_at}
                for c in page
            ]
        )


class CustomerRecommendationsApi(RetailApi):
    @extend_schema(parameters=[CustomerFiltersSerializer], responses=AnswerSerializer)
    def get(self, request: Request, customer_id: str) -> Response:
        """Top-n items for the customer (their events since training count at once).

        Unknown or cold customers get the fallback (`source`: `popular`, then `latest`); items
        the customer had are excluded unless `include_seen=true`; inactive or expired items never
        appear. `explain=true` adds, per model item, the customer's past items behind it (`because`)
        and a sentence (`reason`). Send `recomm_id` back with the events the answer leads to.
        """
        query = CustomerFiltersSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        answer = serving.customer_recommend(
            actor=self.actor,
            customer=customer_id,
            filters=query.filters(),
            model=query.validated_data["model"],
            alias=query.validated_data["alias"],
            explain=query.validated_data["explain"],
        )
        return Response(answer_data(answer))


class ItemSimilarApi(RetailApi):
    @extend_schema(parameters=[FiltersSerializer], responses=AnswerSerializer)
    def get(self, request: Request, item_id: str) -> Response:
        """Items similar to this one (never itself); an item the model never saw gets the fallback."""
        query = FiltersSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        answer = serving.item_similar(
            actor=self.actor,
            item_id=item_id,
            filters=query.filters(),
            model=query.validated_data["model"],
            alias=query.validated_data["alias"],
        )
        return Response(answer_data(answer))


class RecommendationBatchApi(RetailApi):
    parser_classes = [JSONParser]

    class InputSerializer(serializers.Serializer[Any]):
        customers = serializers.ListField(child=serializers.CharField(max_length=200), min_length=1, max_length=10_000)
        n = serializers.IntegerField(min_value=1, max_value=MAX_PAGE_N, required=False, default=10)
        category = serializers.CharField(required=False, default="", allow_blank=True, max_length=200)
        exclude = serializers.ListField(
            child=serializers.CharField(max_length=200), required=False, default=list, max_length=1000
        )
        include_seen = serializers.BooleanField(required=False, default=False)
        model = serializers.CharField(required=False, default="", allow_blank=True, max_length=100)
        alias = serializers.RegexField(
            r"^([a-z][a-z0-9_-]{0,49})?$", required=False, default="", allow_blank=True, max_length=50
        )

    @extend_schema(
        request=InputSerializer,
        responses={
            200: inline_serializer(
                "RetailBatchRecommendations", {"results": serializers.DictField(child=AnswerSerializer())}
            ),
            404: referenced_not_found("the `model`"),
        },
    )
    def post(self, request: Request) -> Response:
        """Recommendations for up to 10,000 customers in one call (one batched model call per version)."""
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        answers = serving.customers_recommend_batch(
            actor=self.actor,
            customers=values["customers"],
            filters=serving.Filters(
                n=values["n"],
                category=values["category"],
                exclude=tuple(values["exclude"]),
                include_seen=values["include_seen"],
            ),
            model=values["model"],
            alias=values["alias"],
        )
        return Response({"results": {customer: answer_data(answer) for customer, answer in answers}})


class RecommendationDetailApi(RetailApi):
    @extend_schema(
        responses=inline_serializer(
            "RetailRecommendationRecord",
            {
                "recomm_id": serializers.UUIDField(),
                "kind": serializers.CharField(),
                "customer": serializers.CharField(),
                "items": serializers.ListField(child=serializers.CharField()),
                "model": serializers.JSONField(),
                "events": EventOutputSerializer(many=True),
            },
        )
    )
    def get(self, request: Request, recomm_id: str) -> Response:
        """What one answer showed, which version produced it, and the events attributed to it."""
        import uuid

        try:
            key = uuid.UUID(recomm_id)
        except ValueError as exc:
            raise NotFound("Recommendation not found.") from exc
        record = selectors.recommendation_get(org=self.org, recomm_id=key)
        events = selectors.event_list(org=self.org, recomm_id=key)[:200]
        return Response(
            {
                "recomm_id": str(record.recomm_id),
                "kind": record.kind,
                "customer": record.customer_external_id,
                "item": record.item_external_id,
                "items": record.items,
                "sources": record.sources,
                "model": {"name": record.model_name, "version": record.model_version_number, "alias": record.alias}
                if record.model_name
                else None,
                "created_at": record.created_at,
                "events": EventOutputSerializer(events, many=True).data,  # type: ignore[arg-type]  # many=True takes a queryset
            }
        )


# --- Exports ------------------------------------------------------------------------------------


class ExportListApi(RetailApi):
    parser_classes = [JSONParser]

    class InputSerializer(serializers.Serializer[Any]):
        model = serializers.CharField(required=False, default="", allow_blank=True, max_length=100)
        alias = serializers.RegexField(
            r"^([a-z][a-z0-9_-]{0,49})?$", required=False, default="", allow_blank=True, max_length=50
        )
        n = serializers.IntegerField(min_value=1, max_value=MAX_PAGE_N, required=False, default=10)

    @extend_schema(responses=ExportOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        return self.paginate(request, selectors.export_list(org=self.org), ExportOutputSerializer)

    @extend_schema(
        request=InputSerializer, responses={202: ExportOutputSerializer, 404: referenced_not_found("the `model`")}
    )
    def post(self, request: Request) -> Response:
        """Precompute the top-n for every customer into a CSV (a job; download it when done)."""
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if values["model"]:
            registered_model_get(org=self.org, name=values["model"], domain=DOMAIN)
        export = services.precompute_start(
            actor=self.actor, model_name=values["model"], alias=values["alias"], n=values["n"]
        )
        export = selectors.export_get(org=self.org, export_id=export.pk)
        return Response(ExportOutputSerializer(export).data, status=status.HTTP_202_ACCEPTED)


class ExportDetailApi(RetailApi):
    @extend_schema(responses=ExportOutputSerializer)
    def get(self, request: Request, export_id: int) -> Response:
        return Response(ExportOutputSerializer(selectors.export_get(org=self.org, export_id=export_id)).data)


class ExportDownloadApi(RetailApi):
    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.BINARY, 409: OpenApiResponse(description="Not ready.")})
    def get(self, request: Request, export_id: int) -> Any:
        export = selectors.export_get(org=self.org, export_id=export_id)
        if not export.file_path:
            from core.errors import Conflict

            raise Conflict("The export is not finished yet; poll its job.", code="not_ready")
        handle = default_storage.open(export.file_path, "rb")
        return FileResponse(
            handle, as_attachment=True, filename=f"recommendations-{export.pk}.csv", content_type="text/csv"
        )


# --- Settings -----------------------------------------------------------------------------------


class SettingsApi(RetailApi):
    parser_classes = [JSONParser]

    class InputSerializer(serializers.Serializer[Any]):
        event_weights = serializers.DictField(child=serializers.JSONField(), required=False)
        fallback_days = serializers.IntegerField(min_value=1, max_value=3650, required=False)

    def _body(self) -> dict[str, Any]:
        current = selectors.settings_get(org=self.org)
        return {"event_weights": selectors.event_weights_get(org=self.org), "fallback_days": current.fallback_days}

    @extend_schema(
        responses=inline_serializer(
            "RetailSettings", {"event_weights": serializers.DictField(), "fallback_days": serializers.IntegerField()}
        )
    )
    def get(self, request: Request) -> Response:
        return Response(self._body())

    @extend_schema(
        request=InputSerializer,
        responses=inline_serializer("RetailSettingsOut", {"event_weights": serializers.DictField()}),
    )
    def put(self, request: Request) -> Response:
        """Org admins: the confidence per event type (`{"purchase": 5, "cart": 3, "view": 1}`), the fallback window."""
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.settings_update(
            actor=self.actor,
            event_weights=data.validated_data.get("event_weights"),
            fallback_days=data.validated_data.get("fallback_days"),
        )
        return Response(self._body())


# --- Training and models ------------------------------------------------------------------------


class TrainingRunListApi(RetailApi):
    parser_classes = [JSONParser]

    class InputSerializer(serializers.Serializer[Any]):
        model = serializers.CharField(max_length=100, required=False, default=DEFAULT_MODEL_NAME)
        algorithm = serializers.ChoiceField(choices=Algorithm.choices, required=False, default=Algorithm.AUTO)
        params = serializers.DictField(required=False, default=dict)
        search = serializers.DictField(required=False)
        since = serializers.DateTimeField(required=False, allow_null=True, default=None)
        promote = serializers.BooleanField(required=False, default=True)

    @extend_schema(request=InputSerializer, responses={202: RetailTrainingRunSerializer})
    def post(self, request: Request) -> Response:
        """Train on the organization's events → 202 with the run (poll its job for progress and loss).

        `algorithm`: `auto` (default; tries ALS, BPR, item-kNN and popularity on a validation split and
        serves the winner), `als`, `bpr`, `item_knn` or `popularity`. `search`: a grid such as
        `{"factors": [32, 64, 128], "regularization": [0.01, 0.1]}` for one algorithm. The new
        version becomes `production` unless `promote` is false.
        """
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        params = dict(values["params"])
        if "search" in values:
            params["search"] = values["search"]
        events = selectors.event_list(org=self.org)
        if values["since"] is not None:
            events = events.filter(timestamp__gte=values["since"])
        if not events.exists():
            # refused now rather than as a failed job (and a model registered for nothing)
            raise ValidationFailed(
                "There are no events to train on" + (" since `since`." if values["since"] else "."), code="no_data"
            )
        run = services.training_start(
            actor=self.actor,
            model_name=values["model"],
            algorithm=values["algorithm"],
            params=params,
            since=values["since"],
            promote=values["promote"],
        )
        run = training_run_get(org=self.org, run_id=run.pk, domain=DOMAIN)
        return Response(RetailTrainingRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class TrainingRunDetailApi(RetailApi):
    @extend_schema(responses=RetailTrainingRunSerializer)
    def get(self, request: Request, run_id: int) -> Response:
        return Response(RetailTrainingRunSerializer(training_run_get(org=self.org, run_id=run_id, domain=DOMAIN)).data)


class ModelListApi(RetailApi):
    @extend_schema(responses=RegisteredModelSerializer(many=True))
    def get(self, request: Request) -> Response:
        return self.paginate(request, registered_model_list(org=self.org, domain=DOMAIN), RegisteredModelSerializer)


class ModelDetailApi(RetailApi):
    @extend_schema(responses=RegisteredModelSerializer)
    def get(self, request: Request, name: str) -> Response:
        return Response(RegisteredModelSerializer(registered_model_get(org=self.org, name=name, domain=DOMAIN)).data)


class ModelVersionDetailApi(RetailApi):
    @extend_schema(responses=ModelVersionDetailSerializer)
    def get(self, request: Request, name: str, number: int) -> Response:
        registered_model_get(org=self.org, name=name, domain=DOMAIN)
        return Response(ModelVersionDetailSerializer(model_version_get(org=self.org, name=name, number=number)).data)


class ModelAliasApi(RetailApi):
    parser_classes = [JSONParser]

    class InputSerializer(serializers.Serializer[Any]):
        alias = serializers.RegexField(r"^[a-z][a-z0-9_-]{0,49}$", max_length=50)
        version = serializers.IntegerField(min_value=1, max_value=2**31 - 1)
        reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")

    @extend_schema(responses=ModelAliasEventSerializer(many=True))
    def get(self, request: Request, name: str) -> Response:
        """The alias history of the model (which version was production or staging, when, by whom)."""
        registered_model_get(org=self.org, name=name, domain=DOMAIN)
        return self.paginate(request, model_alias_history(org=self.org, name=name), ModelAliasEventSerializer)

    @extend_schema(request=InputSerializer, responses=RegisteredModelSerializer)
    def put(self, request: Request, name: str) -> Response:
        """Org admins: point an alias (`production`, `staging`, ...) at a version: how a winner is promoted."""
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        self.actor.require_org_admin("move model aliases", key_scope=DOMAIN)
        registered_model_get(org=self.org, name=name, domain=DOMAIN)
        values = data.validated_data
        model_alias_set(
            actor=self.actor,
            name=name,
            alias=values["alias"],
            version_number=values["version"],
            reason=values["reason"],
        )
        return Response(RegisteredModelSerializer(registered_model_get(org=self.org, name=name, domain=DOMAIN)).data)


class TrafficSplitApi(RetailApi):
    parser_classes = [JSONParser]

    @extend_schema(
        responses=inline_serializer(
            "RetailTrafficSplit", {"weights": serializers.DictField(child=serializers.IntegerField())}
        )
    )
    def get(self, request: Request, name: str) -> Response:
        model = registered_model_get(org=self.org, name=name, domain=DOMAIN)
        return Response(
            {"model": model.name, "weights": selectors.traffic_split_get(org=self.org, model_name=model.name)}
        )

    @extend_schema(
        request={  # any aliases of the model: {"production": 90, "staging": 10}
            "application/json": {
                "type": "object",
                "additionalProperties": {"type": "integer", "minimum": 0, "maximum": 100},
                "example": {"production": 90, "staging": 10},
            }
        },
        responses=inline_serializer(
            "RetailTrafficSplitOut", {"weights": serializers.DictField(child=serializers.IntegerField())}
        ),
    )
    def put(self, request: Request, name: str) -> Response:
        """Org admins: `{"production": 90, "staging": 10}` (whole percentages adding up to 100; `{}` removes the split).

        Each customer is assigned to an alias by a hash of the organization, model and customer:
        the same customer always sees the same arm while the split stands.
        """
        if not isinstance(request.data, dict):
            raise ValidationFailed("Send an object of alias → percentage.", code="not_an_object")
        split = services.traffic_split_set(actor=self.actor, model_name=name, weights=request.data)
        return Response({"model": name, "weights": split.weights if split else {}})


class OnlineReportApi(RetailApi):
    class FilterSerializer(serializers.Serializer[Any]):
        start = serializers.DateTimeField(required=False, allow_null=True, default=None)
        end = serializers.DateTimeField(required=False, allow_null=True, default=None)
        bucket = serializers.ChoiceField(choices=["hour", "day", "week"], required=False, default="day")

    @extend_schema(parameters=[FilterSerializer], responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, name: str) -> Response:
        """Per alias and version: impressions, clicks, carts, purchases, CTR, conversion (Wilson 95% CI), over time."""
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        model = registered_model_get(org=self.org, name=name, domain=DOMAIN)
        values = filters.validated_data
        if values["start"] and values["end"] and values["start"] >= values["end"]:
            raise ValidationFailed("start must be before end.", fields={"start": ["After end."]})
        return Response(reports.online_report(org=self.org, model_name=model.name, **values))

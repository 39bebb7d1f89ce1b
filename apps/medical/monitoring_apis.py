"""`GET /api/v1/medical/models/{name}/monitoring/`: a classifier's weekly suggestion shares and
the clinicians' agreement rate, per version (`apps.medical.monitoring`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from apps.medical.apis import MedicalApi
from apps.medical.choices import DOMAIN
from apps.medical.monitoring import classifier_monitoring
from core.errors import ValidationFailed
from ml.selectors import registered_model_get

CLASSIFIER_KIND = "medical.image_classifier"
MAX_WEEKS = 520


class _Week(serializers.Serializer[Any]):
    week = serializers.DateField()
    analyses = serializers.IntegerField()
    suggestions = serializers.DictField(child=serializers.IntegerField())
    shares = serializers.DictField(child=serializers.FloatField())
    signed_reports = serializers.IntegerField()
    accepted = serializers.IntegerField()
    agreement_rate = serializers.FloatField(allow_null=True)


class ModelMonitoringApi(MedicalApi):
    class FilterSerializer(serializers.Serializer[Any]):
        since = serializers.DateField(required=False, help_text="First day (default: 11 weeks before `until`).")
        until = serializers.DateField(required=False, help_text="Last day (default: today, UTC).")

    @extend_schema(
        tags=["medical: diagnosis"],
        parameters=[FilterSerializer],
        responses=inline_serializer(
            "ClassifierMonitoring",
            {
                "model": serializers.CharField(),
                "since": serializers.DateField(),
                "until": serializers.DateField(),
                "versions": inline_serializer(
                    "ClassifierVersionMonitoring",
                    {
                        "version": serializers.IntegerField(),
                        "analyses": serializers.IntegerField(),
                        "agreement_rate": serializers.FloatField(allow_null=True),
                        "weeks": _Week(many=True),
                    },
                    many=True,
                ),
            },
        ),
    )
    def get(self, request: Request, name: str) -> Response:
        """Per version and ISO week: the share of each suggested class among finished analyses,
        and of the analyses whose report was signed that week, the share the clinician accepted."""
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        until = filters.validated_data.get("until") or dt.datetime.now(dt.UTC).date()
        since = filters.validated_data.get("since") or until - dt.timedelta(weeks=11)
        if since > until:
            raise ValidationFailed(
                "`since` is after `until`.", code="invalid_period", fields={"since": ["After `until`."]}
            )
        if (until - since).days > MAX_WEEKS * 7:
            raise ValidationFailed(
                f"At most {MAX_WEEKS} weeks at a time.",
                code="invalid_period",
                fields={"since": ["Too far before `until`."]},
            )
        model = registered_model_get(org=self.org, name=name, kind=CLASSIFIER_KIND, domain=DOMAIN)
        versions = classifier_monitoring(org=self.org, registered_model=model, since=since, until=until)
        return Response(
            {
                "model": model.name,
                "since": since.isoformat(),
                "until": until.isoformat(),
                "versions": [version.as_dict() for version in versions],
            }
        )

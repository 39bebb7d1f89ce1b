"""The classifier training API (`/api/v1/medical/training-runs/…`) and the medical models
(`/api/v1/medical/models/…`). Thin: validate, call one service or selector, serialize.

A training run is the registry's `TrainingRun`: `POST` answers 202 with it (its Job: poll
`/api/v1/jobs/{id}/`), and `GET …/training-runs/{id}/` shows its live metrics (loss and
validation AUC per epoch) and, once done, the version. Labels come as JSON
(`"labels": [{"uid", "label"}]`) or as a CSV upload (`labels_file`, header `uid,label`) with
the other fields as form fields.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from apps.medical.apis import MedicalApi
from apps.medical.choices import DOMAIN
from apps.medical.imaging import MIN_INPUT_SIZE
from apps.medical.ml import ARCHITECTURES, MAX_BATCH_SIZE, MAX_CLASSES, MAX_EPOCHS, MAX_TRAINING_INPUT_SIZE
from apps.medical.training import MAX_LABEL_LENGTH, MAX_LABELS, classifier_training_start, labels_csv_parse
from core.api.schema import conflict
from core.errors import ValidationFailed
from ml.models import TrainingRun
from ml.selectors import model_version_get, registered_model_get, registered_model_list, training_run_get
from ml.serializers import ModelVersionDetailSerializer, RegisteredModelSerializer, TrainingRunSerializer

SCHEMA_TAG = "medical: diagnosis"


class MedicalTrainingRunOutputSerializer(TrainingRunSerializer):
    """The registry's training run plus what it was trained on: the classes and how many labels."""

    classes = serializers.SerializerMethodField()
    labels = serializers.SerializerMethodField()

    class Meta:
        ref_name = "MedicalTrainingRun"

    def get_classes(self, run: TrainingRun) -> list[str]:
        return [str(name) for name in run.data.get("classes", [])]

    def get_labels(self, run: TrainingRun) -> int:
        return len(run.data.get("labels", []))


class LabelSerializer(serializers.Serializer[Any]):
    uid = serializers.CharField(max_length=64, help_text="A study, series or SOP instance UID of the archive.")
    label = serializers.CharField(max_length=MAX_LABEL_LENGTH)  # type: ignore[assignment]  # a field named like Field's own attribute


class _TrainingFields(serializers.Serializer[Any]):
    """The parameters both request forms share."""

    model = serializers.CharField(max_length=100, help_text="The registered model to train (created on first use).")
    classes = serializers.ListField(
        child=serializers.CharField(max_length=MAX_LABEL_LENGTH),
        required=False,
        max_length=MAX_CLASSES,
        help_text="Class names in output order (default: the labels, sorted); a label outside them is a 400.",
    )
    epochs = serializers.IntegerField(min_value=1, max_value=MAX_EPOCHS, required=False)
    batch_size = serializers.IntegerField(min_value=1, max_value=MAX_BATCH_SIZE, required=False)
    learning_rate = serializers.FloatField(min_value=1e-8, max_value=1.0, required=False)
    input_size = serializers.IntegerField(min_value=MIN_INPUT_SIZE, max_value=MAX_TRAINING_INPUT_SIZE, required=False)
    # a CharField, not a ChoiceField: the kind validates it (one list of architectures), and the
    # schema keeps one `architecture` enum name for traffic's detector choices
    architecture = serializers.CharField(
        max_length=32, required=False, help_text=f"One of {', '.join(ARCHITECTURES)} (default densenet121)."
    )
    window_center = serializers.FloatField(
        required=False, allow_null=True, help_text="A window preset (modality units)."
    )
    window_width = serializers.FloatField(required=False, allow_null=True, min_value=1e-6)
    validation_fraction = serializers.FloatField(min_value=0.05, max_value=0.5, required=False)
    seed = serializers.IntegerField(min_value=0, max_value=2**31 - 1, required=False)
    base_version = serializers.IntegerField(
        min_value=1, required=False, allow_null=True, help_text="Fine-tune from this version of the same model."
    )
    promote = serializers.BooleanField(required=False, default=False)

    PARAMS = (
        "epochs",
        "batch_size",
        "learning_rate",
        "input_size",
        "architecture",
        "window_center",
        "window_width",
        "validation_fraction",
        "seed",
    )

    def params(self) -> dict[str, Any]:
        values = self.validated_data
        return {name: values[name] for name in self.PARAMS if values.get(name) is not None}


class TrainingRunJsonInputSerializer(_TrainingFields):
    labels = serializers.ListField(child=LabelSerializer(), max_length=MAX_LABELS, allow_empty=False)


class TrainingRunUploadInputSerializer(_TrainingFields):
    labels_file = serializers.FileField(help_text="CSV with the header uid,label.")


class TrainingRunListApi(MedicalApi):
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    @extend_schema(
        request={
            "application/json": TrainingRunJsonInputSerializer,
            "multipart/form-data": TrainingRunUploadInputSerializer,
        },
        responses={
            202: MedicalTrainingRunOutputSerializer,
            409: conflict("`kind_mismatch`: the model is of another kind."),
        },
        tags=[SCHEMA_TAG],
    )
    def post(self, request: Request) -> Response:
        """Train a classifier on labelled studies, series or instances of the archive (202: the run and its Job)."""
        multipart = request.content_type.startswith(("multipart/", "application/x-www-form-urlencoded"))
        serializer_class = TrainingRunUploadInputSerializer if multipart else TrainingRunJsonInputSerializer
        data = serializer_class(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        labels = labels_csv_parse(values["labels_file"]) if multipart else [dict(item) for item in values["labels"]]
        if (values.get("window_center") is None) != (values.get("window_width") is None):
            raise ValidationFailed(
                "Give window_center and window_width together.", fields={"window_width": ["Needs window_center."]}
            )
        run = classifier_training_start(
            actor=self.actor,
            model_name=values["model"],
            labels=labels,
            classes=values.get("classes") or None,
            params=data.params(),
            promote=values["promote"],
            base_version=values.get("base_version"),
        )
        run = training_run_get(org=self.org, run_id=run.pk, domain=DOMAIN)
        return Response(MedicalTrainingRunOutputSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class TrainingRunDetailApi(MedicalApi):
    @extend_schema(responses=MedicalTrainingRunOutputSerializer, tags=[SCHEMA_TAG])
    def get(self, request: Request, run_id: int) -> Response:
        run = training_run_get(org=self.org, run_id=run_id, domain=DOMAIN)
        return Response(MedicalTrainingRunOutputSerializer(run).data)


class ModelListApi(MedicalApi):
    @extend_schema(responses=RegisteredModelSerializer(many=True), tags=[SCHEMA_TAG])
    def get(self, request: Request) -> Response:
        """The organization's medical models with their versions and aliases."""
        return self.paginate(request, registered_model_list(org=self.org, domain=DOMAIN), RegisteredModelSerializer)


class ModelDetailApi(MedicalApi):
    @extend_schema(responses=RegisteredModelSerializer, tags=[SCHEMA_TAG])
    def get(self, request: Request, name: str) -> Response:
        return Response(RegisteredModelSerializer(registered_model_get(org=self.org, name=name, domain=DOMAIN)).data)


class ModelVersionDetailApi(MedicalApi):
    @extend_schema(responses=ModelVersionDetailSerializer, tags=[SCHEMA_TAG])
    def get(self, request: Request, name: str, number: int) -> Response:
        """A version's metrics (split by patient, ROC AUC, confusion matrix, calibration), schema and model card."""
        registered_model_get(org=self.org, name=name, domain=DOMAIN)
        return Response(ModelVersionDetailSerializer(model_version_get(org=self.org, name=name, number=number)).data)

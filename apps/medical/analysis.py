"""AI analyses of studies: an image classifier (`medical.image_classifier`) run over a study's
images by a job on the `inference` queue, its findings, and its results written back into the
study as DICOM objects.

    analysis_create    validate (model kind, alias, a readable image), enqueue `medical.analysis`
    analysis_execute   the job: read → preprocess → predict (batched, `ml.runtime`) → findings →
                       Grad-CAM saliency → a TID 1500 SR and a secondary capture into the study

What a finding is:

- Instance: the class probabilities of one image. A multi-frame instance is classified frame by
  frame and its finding holds the *mean* over its frames (one row per instance, so a 300-frame
  enhanced CT weighs as one image in its series, like 300 single-frame slices weigh 300);
  `frame_number` then names the frame with the highest probability of the instance's suggested
  class (the frame its saliency map is drawn on). Single-frame instances have no frame number.
- Series: the mean of its instances' probabilities; the suggested label is the argmax. Its
  saliency map is the one of the instance (and frame) with the highest probability of that label.
- Study (the `Analysis` row): the mean over every analysed instance. A mean over instances, not
  the most confident series: one confident outlier (a scout image, a small reformat) cannot
  override the series that hold the study's images, while each series' own answer stays visible
  in its finding. The secondary capture shows the instance that concerns the study's suggestion
  most.

Idempotency (a job that runs twice after a crash): findings are keyed by their unique constraint
and rewritten; the SR and secondary capture get UIDs derived from the analysis (so a re-run
makes the same UIDs) and are not stored again when already in the archive; saliency PNGs have
one storage name per analysis, instance, frame and class.

What the analysis writes never triggers routing rules: it stores through
`services.instances_store_batch` directly (with `ReceivedVia.AI`), not through the receiving
paths that call `routing.studies_received`, and AI-received instances are never analysed.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pydicom
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Max, QuerySet
from django.utils import timezone
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from apps.medical import structured_reports
from apps.medical.choices import DOMAIN, AnalysisTrigger, DuplicatePolicy, FindingLevel, ReceivedVia
from apps.medical.dicom_files import InstanceRefused
from apps.medical.models import Analysis, AnalysisFinding, ArchiveSettings, Instance, RoutingRule, Series, Study
from apps.medical.services import ReceivedFile, instances_store_batch
from core.audit.services import audit_record
from core.errors import Conflict, DomainError, NotFound, ValidationFailed
from core.jobs.choices import JobQueue
from core.jobs.runner import JobContext, job_enqueue, job_function, job_params_set
from core.storage import file_sha256, scratch_directory
from core.tenancy.actors import Actor
from ml import runtime
from ml.models import ModelAlias, ModelVersion, RegisteredModel

if TYPE_CHECKING:
    from apps.medical.imaging import Preprocessing

logger = logging.getLogger(__name__)

ANALYSIS_JOB_KIND = "medical.analysis"
CLASSIFIER_KIND = "medical.image_classifier"
# Series of these modalities hold no image a classifier reads (reports, presentation states,
# key object selections, segmentations, RT plans and structures, registrations, documents).
NON_IMAGE_MODALITIES = frozenset({"SR", "KO", "PR", "SEG", "RTSTRUCT", "RTPLAN", "RTDOSE", "RTRECORD", "REG", "DOC"})
# Network inputs per `runtime.predict` call (the runtime splits further by the kind's
# max_batch_size); also one progress step.
INPUTS_PER_BATCH = 64
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_UID_NAMESPACE = "tessera.medical.analysis"
SALIENCY_MEDIA_TYPE = "image/png"


class AnalysisFailed(DomainError):
    """The analysis cannot produce a result (no instance could be read); fails the job with this message."""

    code = "analysis_failed"


# --- What an analysis covers -----------------------------------------------------------------------


@dataclass(frozen=True)
class SeriesCriteria:
    """Which series of a study an analysis reads: a routing rule's criteria (empty: any series).

    Modality is compared exactly (upper case, as DICOM writes CS values), body part
    case-insensitively, and the description pattern is `re.search`ed case-insensitively.
    """

    modality: str = ""
    body_part: str = ""
    series_description_pattern: str = ""

    @classmethod
    def of_rule(cls, rule: RoutingRule) -> SeriesCriteria:
        return cls(
            modality=rule.modality, body_part=rule.body_part, series_description_pattern=rule.series_description_pattern
        )

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> SeriesCriteria:
        data = data or {}
        return cls(
            modality=str(data.get("modality", "") or ""),
            body_part=str(data.get("body_part", "") or ""),
            series_description_pattern=str(data.get("series_description_pattern", "") or ""),
        )

    def to_json(self) -> dict[str, str]:
        return {
            "modality": self.modality,
            "body_part": self.body_part,
            "series_description_pattern": self.series_description_pattern,
        }

    def matches(self, series: Series) -> bool:
        if self.modality and series.modality.strip().upper() != self.modality.strip().upper():
            return False
        if self.body_part and series.body_part_examined.strip().casefold() != self.body_part.strip().casefold():
            return False
        pattern = self.series_description_pattern
        return not pattern or re.search(pattern, series.series_description or "", re.IGNORECASE) is not None


def _image_instances() -> QuerySet[Instance]:
    """Instances with pixel data a classifier may read: an image (rows and columns), not one of
    Tessera's own AI results (SR, secondary capture)."""
    return (
        Instance.objects.filter(rows__isnull=False, columns__isnull=False)
        .exclude(received_via=ReceivedVia.AI)
        .exclude(series__modality__in=NON_IMAGE_MODALITIES)
    )


def analysable_series(*, study: Study, criteria: SeriesCriteria | None = None) -> list[Series]:
    """The study's series holding at least one readable image and matching `criteria`."""
    criteria = criteria or SeriesCriteria()
    with_images = _image_instances().filter(series__study=study).values("series_id")
    series = Series.objects.filter(study=study, pk__in=with_images).defer("attributes")
    return [row for row in series if criteria.matches(row)]


def analysable_instances(*, study: Study, criteria: SeriesCriteria | None = None) -> QuerySet[Instance]:
    """The images an analysis of `study` reads, in series then instance order."""
    series = analysable_series(study=study, criteria=criteria)
    return (
        _image_instances()
        .filter(series__in=series)
        .select_related("series")
        .defer("attributes", "series__attributes")
        .order_by("series__series_number", "series__series_instance_uid", "instance_number", "sop_instance_uid")
    )


# --- Creating an analysis --------------------------------------------------------------------------


def _classifier_checked(*, actor: Actor, registered_model: RegisteredModel) -> None:
    if registered_model.organization_id != actor.organization.pk:
        raise NotFound(f"Model {registered_model.name!r} not found.")
    if registered_model.kind != CLASSIFIER_KIND:
        message = f"Model {registered_model.name!r} is a {registered_model.kind} model, not a {CLASSIFIER_KIND}."
        raise ValidationFailed(message, code="wrong_model_kind", fields={"model": [message]})


def classifier_version_for_alias(*, actor: Actor, registered_model: RegisteredModel, alias: str) -> ModelVersion:
    """The version `alias` of a classifier of `actor`'s organization points at.

    Raises:
        NotFound: the model belongs to another organization.
        ValidationFailed: `wrong_model_kind` (not an image classifier) or `unknown_alias`.
    """
    _classifier_checked(actor=actor, registered_model=registered_model)
    row = ModelAlias.objects.select_related("version__registered_model").filter(
        registered_model=registered_model, name=alias
    )
    alias_row = row.first()
    if alias_row is None:
        message = f"Model {registered_model.name!r} has no {alias!r} version."
        raise ValidationFailed(message, code="unknown_alias", fields={"alias": [message]})
    return alias_row.version


@transaction.atomic
def analysis_create(
    *,
    actor: Actor,
    study: Study,
    registered_model: RegisteredModel,
    alias: str = "production",
    trigger: str = AnalysisTrigger.API,
    routing_rule: RoutingRule | None = None,
) -> Analysis:
    """Enqueue an analysis of `study` by the version `alias` of `registered_model` points at now.

    The version is resolved here and recorded, so an alias moved while the job waits does not
    change what the analysis runs. A routing rule's criteria limit the analysis to the series
    that match them (recorded in the job's params, so editing the rule later changes nothing).

    Raises:
        NotFound: the study or model belongs to another organization.
        ValidationFailed: `wrong_model_kind`, `unknown_alias`, or `no_readable_image` (the study,
            or the series the rule matches, hold no image the model can read).
    """
    if study.organization_id != actor.organization.pk:
        raise NotFound(f"Study {study.study_instance_uid} not found.")
    if trigger not in AnalysisTrigger.values:
        raise ValueError(f"Unknown analysis trigger {trigger!r}")
    version = classifier_version_for_alias(actor=actor, registered_model=registered_model, alias=alias)
    criteria = SeriesCriteria.of_rule(routing_rule) if routing_rule is not None else SeriesCriteria()
    if not analysable_instances(study=study, criteria=criteria).exists():
        message = "The study holds no image the model can read (an image with pixel data, not an SR or AI result)."
        raise ValidationFailed(message, code="no_readable_image", fields={"study": [message]})
    job = job_enqueue(actor=actor, kind=ANALYSIS_JOB_KIND, domain=DOMAIN)
    analysis = Analysis.objects.create(
        organization=actor.organization,
        study=study,
        job=job,
        model_version=version,
        alias=alias,
        trigger=trigger,
        routing_rule=routing_rule,
        created_by=actor.user,
    )
    # The analysis points at its job (one-to-one): the job exists first and learns the id before
    # the commit sends it.
    job_params_set(job=job, params={"analysis_id": analysis.pk, "series_criteria": criteria.to_json()})
    audit_record(
        actor=actor,
        action="medical.analysis.create",
        obj=analysis,
        details={
            "study": study.study_instance_uid,
            "model": registered_model.name,
            "version": version.number,
            "alias": alias,
            "trigger": trigger,
            "routing_rule": routing_rule.pk if routing_rule is not None else None,
        },
    )
    return analysis


# --- Reads -----------------------------------------------------------------------------------------


def analysis_list(*, org: Any, study: Study) -> QuerySet[Analysis]:
    """The analyses of one study of `org`, newest first."""
    return (
        Analysis.objects.filter(organization=org, study=study)
        .select_related("job", "model_version__registered_model", "study", "routing_rule")
        .order_by("-created_at", "-id")
    )


def analysis_get(*, org: Any, study: Study, analysis_id: int) -> Analysis:
    analysis = analysis_list(org=org, study=study).filter(pk=analysis_id).first()
    if analysis is None:
        raise NotFound("Analysis not found.")
    return analysis


def finding_get(*, analysis: Analysis, finding_id: int) -> AnalysisFinding:
    finding = (
        AnalysisFinding.objects.select_related("series", "instance")
        .filter(analysis=analysis, organization_id=analysis.organization_id, pk=finding_id)
        .first()
    )
    if finding is None:
        raise NotFound("Finding not found.")
    return finding


# --- Executing an analysis (the `medical.analysis` job) ----------------------------------------------


@dataclass
class _Scored:
    """One analysed instance: its probabilities per frame, and its header (pixel data dropped)."""

    instance: Instance
    header: Dataset
    frame_probabilities: np.ndarray  # (frames, classes)

    @property
    def probabilities(self) -> np.ndarray:
        return np.asarray(self.frame_probabilities.mean(axis=0), dtype=np.float64)

    @property
    def label_index(self) -> int:
        return int(np.argmax(self.probabilities))

    def best_frame(self, class_index: int) -> int:
        """0-based frame with the highest probability of `class_index`."""
        return int(np.argmax(self.frame_probabilities[:, class_index]))


@dataclass
class _Heat:
    """A Grad-CAM map at the source image's size, and where its PNG overlay is stored."""

    heatmap: np.ndarray
    file: str
    frame_index: int


@dataclass
class _Run:
    analysis: Analysis
    version: ModelVersion
    classes: list[str]
    preprocessing: Preprocessing
    report: Callable[..., None]
    errors: list[dict[str, str]] = field(default_factory=list)
    scored: list[_Scored] = field(default_factory=list)
    heat: dict[tuple[int, int, int], _Heat] = field(default_factory=dict)
    predict_ms: float = 0.0
    inputs: int = 0


@job_function(ANALYSIS_JOB_KIND, queue=JobQueue.INFERENCE, domain=DOMAIN)
def analysis_job(ctx: JobContext) -> dict[str, Any]:
    return analysis_execute(
        analysis_id=int(ctx.params["analysis_id"]),
        criteria=SeriesCriteria.from_json(ctx.params.get("series_criteria")),
        report=ctx.report,
    )


def analysis_execute(
    *, analysis_id: int, criteria: SeriesCriteria | None = None, report: Callable[..., None]
) -> dict[str, Any]:
    """Run an analysis: classify every readable image, aggregate, explain, write the results.

    An instance that cannot be read or decoded is recorded in `Analysis.errors` and skipped; if
    none can be read, the job fails (`AnalysisFailed`). Progress is reported per batch.

    Returns:
        The job's result: the suggestion, counts, the SR/secondary capture UIDs and the
        inference throughput of the predict calls (`images_per_second`).
    """
    analysis = Analysis.objects.select_related(
        "organization", "study", "study__patient", "model_version__registered_model", "created_by"
    ).get(pk=analysis_id)
    version = analysis.model_version
    run = _Run(
        analysis=analysis,
        version=version,
        classes=[str(name) for name in (version.input_schema or {}).get("classes", [])],
        preprocessing=runtime.preprocessor(version),  # the version's recorded preprocessing
        report=report,
    )
    instances = list(analysable_instances(study=analysis.study, criteria=criteria))
    if not instances:
        raise AnalysisFailed("The study no longer holds an image the model can read.")
    _classify(run, instances)
    if not run.scored:
        Analysis.objects.filter(pk=analysis.pk).update(errors=run.errors, updated_at=timezone.now())
        first = run.errors[0]["error"] if run.errors else "no instance"
        raise AnalysisFailed(f"None of the {len(instances)} instances could be read (first error: {first}).")
    report(progress=0.8, message="Computing saliency maps")
    series_findings = _series_findings(run)
    study_probabilities = np.mean([item.probabilities for item in run.scored], axis=0)
    study_index = int(np.argmax(study_probabilities))
    report(progress=0.9, message="Writing the structured report and the saliency capture")
    sr_uid, sc_uid = _write_results(run, study_probabilities=study_probabilities, study_index=study_index)
    _save_findings(
        run,
        series_findings=series_findings,
        study_probabilities=study_probabilities,
        study_index=study_index,
        sr_uid=sr_uid,
        sc_uid=sc_uid,
    )
    seconds = run.predict_ms / 1000
    return {
        "analysis_id": analysis.pk,
        "suggested_label": run.classes[study_index],
        "probability": float(study_probabilities[study_index]),
        "instances": len(run.scored),
        "errors": len(run.errors),
        "sr_sop_instance_uid": sr_uid,
        "saliency_sop_instance_uid": sc_uid,
        "inference": {
            "inputs": run.inputs,
            "predict_seconds": round(seconds, 4),
            "images_per_second": round(run.inputs / seconds, 2) if seconds > 0 else None,
        },
    }


def _read(instance: Instance) -> Dataset:
    with default_storage.open(instance.file, "rb") as handle:
        return pydicom.dcmread(handle)


def _inputs_of(instance: Instance, preprocessing: Preprocessing) -> tuple[Dataset, list[np.ndarray]]:
    """The instance's dataset and one network input per frame.

    Raises:
        Exception: anything reading or decoding untrusted bytes can raise (pydicom's decoders raise
            ValueError, NotImplementedError, RuntimeError, ...); the caller records it per instance.
    """
    from apps.medical import imaging

    ds = _read(instance)
    inputs = imaging.dataset_inputs(ds, preprocessing)
    if not inputs:
        raise imaging.ImageUnreadable("The instance has no frame to classify.")
    return ds, inputs


def _error_message(exc: Exception) -> str:
    from apps.medical.imaging import ImageUnreadable

    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, ImageUnreadable) else f"{type(exc).__name__}: {text}"


def _header(ds: Dataset) -> Dataset:
    for keyword in _PIXEL_KEYWORDS:
        if keyword in ds:
            del ds[keyword]
    return ds


def _classify(run: _Run, instances: list[Instance]) -> None:
    """Read, preprocess and predict every instance, INPUTS_PER_BATCH network inputs at a time."""
    pending: list[tuple[Instance, Dataset, list[np.ndarray]]] = []
    queued = 0
    done = 0
    total = len(instances)

    def flush() -> None:
        nonlocal pending, queued
        if not pending:
            return
        batch = [array for _, _, arrays in pending for array in arrays]
        prediction = runtime.predict(run.version, batch)
        run.predict_ms += prediction.predict_ms
        run.inputs += len(batch)
        outputs = np.asarray(prediction.outputs, dtype=np.float64)
        start = 0
        for instance, ds, arrays in pending:
            run.scored.append(_Scored(instance, _header(ds), outputs[start : start + len(arrays)]))
            start += len(arrays)
        pending, queued = [], 0
        run.report(progress=0.8 * done / total, message=f"Classified {done} of {total} instances")

    for instance in instances:
        try:
            ds, arrays = _inputs_of(instance, run.preprocessing)
        except Exception as exc:  # noqa: BLE001  (untrusted bytes: any decoder failure is this instance's error)
            logger.info("Analysis %s: instance %s unreadable: %s", run.analysis.pk, instance.sop_instance_uid, exc)
            run.errors.append({"sop_instance_uid": instance.sop_instance_uid, "error": _error_message(exc)[:500]})
            done += 1
            continue
        pending.append((instance, ds, arrays))
        queued += len(arrays)
        done += 1
        if queued >= INPUTS_PER_BATCH:
            flush()
    flush()


@dataclass(frozen=True)
class _SeriesFinding:
    series: Series
    probabilities: np.ndarray
    label_index: int
    concerned: _Scored


def _series_findings(run: _Run) -> list[_SeriesFinding]:
    """One finding per series (mean of its instances), each with the saliency of the instance it
    concerns most (highest probability of the series' suggested label)."""
    by_series: dict[int, list[_Scored]] = {}
    for item in run.scored:
        by_series.setdefault(item.instance.series_id, []).append(item)
    findings = []
    for items in by_series.values():
        probabilities = np.mean([item.probabilities for item in items], axis=0)
        label_index = int(np.argmax(probabilities))
        concerned = max(items, key=lambda item: float(item.probabilities[label_index]))
        _saliency(run, concerned, label_index)
        findings.append(_SeriesFinding(items[0].instance.series, probabilities, label_index, concerned))
    return findings


def saliency_file_name(*, analysis: Analysis, sop_instance_uid: str, frame_index: int, class_index: int) -> str:
    """One storage name per analysis, instance, frame and class: a re-run overwrites, never adds."""
    return (
        f"{DOMAIN}/org-{analysis.organization_id}/analyses/{analysis.pk}/"
        f"saliency-{sop_instance_uid}-f{frame_index + 1}-c{class_index}.png"
    )


def _saliency(run: _Run, item: _Scored, class_index: int) -> _Heat:
    """Grad-CAM of `item`'s most concerned frame for `class_index`, at the image's size, stored as
    a PNG overlay (computed once per instance, frame and class)."""
    from apps.medical import saliency

    frame_index = item.best_frame(class_index)
    key = (item.instance.pk, frame_index, class_index)
    if key in run.heat:
        return run.heat[key]
    _, arrays = _inputs_of(item.instance, run.preprocessing)
    explained = runtime.explain(run.version, [arrays[frame_index]], classes=[class_index])
    rows = int(item.header.get("Rows") or item.instance.rows or 0)
    columns = int(item.header.get("Columns") or item.instance.columns or 0)
    heatmap = saliency.heatmap_resize(np.asarray(explained.outputs[0], dtype=np.float32), rows, columns)
    name = saliency_file_name(
        analysis=run.analysis,
        sop_instance_uid=item.instance.sop_instance_uid,
        frame_index=frame_index,
        class_index=class_index,
    )
    if default_storage.exists(name):
        default_storage.delete(name)
    stored = default_storage.save(name, ContentFile(saliency.overlay_png(heatmap)))
    run.heat[key] = _Heat(heatmap=heatmap, file=stored, frame_index=frame_index)
    return run.heat[key]


def result_uid(*, analysis: Analysis, what: str) -> str:
    """A UID derived from the analysis (its id, study, creation time), the same on every run of its job."""
    return str(
        generate_uid(
            entropy_srcs=[
                _UID_NAMESPACE,
                str(analysis.organization_id),
                str(analysis.pk),
                analysis.study.study_instance_uid,
                analysis.created_at.isoformat(),
                what,
            ]
        )
    )


def algorithm_of(version: ModelVersion) -> structured_reports.Algorithm:
    """Who made a finding, as the DICOM objects name it: the model, its version and artifact."""
    return structured_reports.Algorithm(
        name=version.registered_model.name,
        version=str(version.number),
        artifact_sha256=version.artifact_sha256,
        kind=version.kind,
    )


def derived_instances_store(*, actor: Actor, datasets: Sequence[Dataset]) -> None:
    """Store objects Tessera derived from the archive's own instances (AI results, saliency
    captures, verified report SRs) like any received instance, `received_via=ai`.

    Never de-identified on receipt: they derive from instances already stored (de-identified if
    the archive does that), and their references must keep those instances' UIDs. A stored copy
    is kept (a re-run does not store again). They go through `instances_store_batch` directly,
    not the receiving paths that call `routing.studies_received`, so they never trigger routing.

    Raises:
        Conflict: the archive refused one (`derived_instance_refused`), with its reason.
    """
    policy = ArchiveSettings(
        organization=actor.organization, duplicate_policy=DuplicatePolicy.KEEP, deidentify_on_receipt=False
    )
    with scratch_directory(prefix="derived-") as folder:
        files = []
        for position, ds in enumerate(datasets):
            path = Path(folder) / f"derived-{position}.dcm"
            ds.save_as(path, enforce_file_format=True)
            files.append(ReceivedFile(path=path, sha256=file_sha256(path), size=path.stat().st_size))
        results = instances_store_batch(actor=actor, files=files, received_via=ReceivedVia.AI, archive_settings=policy)
    refused = [result for result in results if isinstance(result, InstanceRefused)]
    if refused:
        logger.error("The archive refused a derived instance: %s", refused[0].message)
        raise Conflict(f"The archive refused a derived object: {refused[0].message}", code="derived_instance_refused")


def _write_results(run: _Run, *, study_probabilities: np.ndarray, study_index: int) -> tuple[str, str]:
    """Store the SR (TID 1500) and the saliency secondary capture in the study; returns their UIDs."""
    from apps.medical import rendering, saliency

    analysis, version = run.analysis, run.version
    algorithm = algorithm_of(version)
    sr_series, sr_uid = result_uid(analysis=analysis, what="sr-series"), result_uid(analysis=analysis, what="sr")
    sc_series, sc_uid = result_uid(analysis=analysis, what="sc-series"), result_uid(analysis=analysis, what="sc")
    base_number = next_series_number(analysis.study, exclude=(sr_series, sc_series))
    already = set(
        Instance.objects.filter(organization=analysis.organization, sop_instance_uid__in=[sr_uid, sc_uid]).values_list(
            "sop_instance_uid", flat=True
        )
    )
    to_store: list[Dataset] = []
    if sr_uid not in already:
        finding = structured_reports.AiFinding(
            label=run.classes[study_index],
            probability=float(study_probabilities[study_index]),
            probabilities={name: float(p) for name, p in zip(run.classes, study_probabilities, strict=True)},
            source_instances=[item.header for item in run.scored],
            per_instance=[
                (
                    item.instance.sop_instance_uid,
                    run.classes[item.label_index],
                    float(item.probabilities[item.label_index]),
                )
                for item in _most_concerned(run.scored, study_index)
            ],
        )
        to_store.append(
            structured_reports.ai_result_sr(
                study=[item.header for item in run.scored],
                finding=finding,
                algorithm=algorithm,
                series_instance_uid=sr_series,
                sop_instance_uid=sr_uid,
                series_number=base_number,
            )
        )
    if sc_uid not in already:
        concerned = max(run.scored, key=lambda item: float(item.probabilities[study_index]))
        heat = _saliency(run, concerned, study_index)
        source = _read(concerned.instance)
        png = rendering.render_frame(
            source, heat.frame_index + 1, rendering.RenderParams(media_type=SALIENCY_MEDIA_TYPE)
        )
        from PIL import Image

        with Image.open(io.BytesIO(png)) as image:
            display = np.asarray(image.convert("L"), dtype=np.uint8)
        to_store.append(
            structured_reports.saliency_secondary_capture(
                source=source,
                overlay_rgb=saliency.blended_rgb(display, heat.heatmap),
                algorithm=algorithm,
                series_instance_uid=sc_series,
                sop_instance_uid=sc_uid,
                series_number=base_number + 1,
            )
        )
    if to_store:
        try:
            derived_instances_store(
                actor=Actor.system(analysis.organization, user=analysis.created_by), datasets=to_store
            )
        except Conflict as exc:
            raise AnalysisFailed(f"The archive refused the analysis' result: {exc.message}") from exc
    return sr_uid, sc_uid


SR_INSTANCE_ROWS = 25


def _most_concerned(scored: Sequence[_Scored], class_index: int) -> list[_Scored]:
    """The instances whose own result goes into the SR as a measurement group: all of a small
    study, else the `SR_INSTANCE_ROWS` with the highest probability of the study's suggestion
    (in study order). A 300-slice CT with a group per slice made a 1.8 MB SR that took highdicom
    25 s to build; every analysed image is still referenced by the study-level finding, and every
    instance's probabilities stay in the analysis's findings (API, portal)."""
    if len(scored) <= SR_INSTANCE_ROWS:
        return list(scored)
    ranked = sorted(range(len(scored)), key=lambda i: -float(scored[i].probabilities[class_index]))
    return [scored[i] for i in sorted(ranked[:SR_INSTANCE_ROWS])]


def next_series_number(study: Study, *, exclude: Sequence[str] = (), minimum: int = 1) -> int:
    """The Series Number for a series Tessera writes into `study` (an AI result, a signed
    report's SR): after the study's other series (those in `exclude` left out, so a re-run
    numbers alike), and at least `minimum`."""
    highest = (
        Series.objects.filter(study=study).exclude(series_instance_uid__in=exclude).aggregate(n=Max("series_number"))
    )["n"]
    return max(minimum, int(highest or 0) + 1)


def _probabilities_json(classes: Sequence[str], probabilities: np.ndarray) -> dict[str, float]:
    return {name: float(p) for name, p in zip(classes, probabilities, strict=True)}


@transaction.atomic
def _save_findings(
    run: _Run,
    *,
    series_findings: list[_SeriesFinding],
    study_probabilities: np.ndarray,
    study_index: int,
    sr_uid: str,
    sc_uid: str,
) -> None:
    """Write the findings (keyed by their unique constraint) and the analysis' outcome, at once."""
    analysis, classes = run.analysis, run.classes
    org_id = analysis.organization_id
    kept: list[int] = []

    def put(*, level: str, series: Series, instance: Instance | None, frame: int | None, **values: Any) -> None:
        finding, _ = AnalysisFinding.objects.update_or_create(
            analysis=analysis,
            level=level,
            series=series,
            instance=instance,
            frame_number=frame,
            defaults={"organization_id": org_id, **values},
        )
        kept.append(finding.pk)

    for item in run.scored:
        index = item.label_index
        multi_frame = len(item.frame_probabilities) > 1
        heat = run.heat.get((item.instance.pk, item.best_frame(index), index))
        put(
            level=FindingLevel.INSTANCE,
            series=item.instance.series,
            instance=item.instance,
            frame=item.best_frame(index) + 1 if multi_frame else None,
            suggested_label=classes[index],
            probability=float(item.probabilities[index]),
            probabilities=_probabilities_json(classes, item.probabilities),
            saliency_file=heat.file if heat is not None else "",
        )
    for finding in series_findings:
        heat = run.heat[
            (finding.concerned.instance.pk, finding.concerned.best_frame(finding.label_index), finding.label_index)
        ]
        put(
            level=FindingLevel.SERIES,
            series=finding.series,
            instance=None,
            frame=None,
            suggested_label=classes[finding.label_index],
            probability=float(finding.probabilities[finding.label_index]),
            probabilities=_probabilities_json(classes, finding.probabilities),
            saliency_file=heat.file,
        )
    AnalysisFinding.objects.filter(analysis=analysis).exclude(pk__in=kept).delete()
    analysis.suggested_label = classes[study_index]
    analysis.probability = float(study_probabilities[study_index])
    analysis.probabilities = _probabilities_json(classes, study_probabilities)
    analysis.sr_sop_instance_uid = sr_uid
    analysis.saliency_sop_instance_uid = sc_uid
    analysis.errors = run.errors
    analysis.completed_at = timezone.now()
    analysis.save(
        update_fields=[
            "suggested_label",
            "probability",
            "probabilities",
            "sr_sop_instance_uid",
            "saliency_sop_instance_uid",
            "errors",
            "completed_at",
            "updated_at",
        ]
    )
    audit_record(
        actor=Actor.system(analysis.organization, user=analysis.created_by),
        action="medical.analysis.complete",
        obj=analysis,
        details={
            "study": analysis.study.study_instance_uid,
            "suggested_label": analysis.suggested_label,
            "probability": analysis.probability,
            "instances": len(run.scored),
            "errors": len(run.errors),
            "sr": sr_uid,
            "saliency": sc_uid,
        },
    )


def series_finding_concerned_instance(finding: AnalysisFinding) -> AnalysisFinding | None:
    """The instance finding a series finding's saliency map comes from (same analysis and file)."""
    if finding.level != FindingLevel.SERIES or not finding.saliency_file:
        return None
    return (
        AnalysisFinding.objects.filter(
            analysis_id=finding.analysis_id,
            level=FindingLevel.INSTANCE,
            series_id=finding.series_id,
            saliency_file=finding.saliency_file,
        )
        .select_related("instance")
        .first()
    )


def saliency_open(finding: AnalysisFinding) -> Any:
    """The stored PNG overlay of `finding`, opened for reading (NotFound when it has none)."""
    if not finding.saliency_file or not default_storage.exists(finding.saliency_file):
        raise NotFound("This finding has no saliency map.")
    return default_storage.open(finding.saliency_file, "rb")

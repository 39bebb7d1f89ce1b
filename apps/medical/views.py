"""The clinician portal (`/portal/medical/…`): clinicians and org admins.

Study list with search, upload, a study page (attributes, series with thumbnails, for org admins
the study's access log and deletion), and a light viewer that scrolls the slices the archive
renders (WADO-RS `/rendered`, read by the browser with the session cookie). Every page that shows
PHI writes one `PhiAccess` row (kind `portal`) for its request. Another organization's study is
a 404 on every page.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.medical import diagnosis_views, exports, ohif, rendering, selectors, services
from apps.medical.access_log import AccessLogFilters, access_log_read
from apps.medical.choices import AccessKind
from apps.medical.dicomweb.base import API_ROOT
from apps.medical.forms import DicomNodeForm, ExportForm, StudyDeleteForm, StudySearchForm, UploadForm
from apps.medical.models import Instance, Series, Study
from apps.medical.uploads import upload_receive
from core.errors import DomainError
from core.portal.access import role_required
from core.portal.forms import add_domain_error
from core.tenancy.actors import Actor
from core.tenancy.choices import Role

clinician_required = role_required(
    Role.CLINICIAN, message="The imaging portal is for clinicians and organization admins."
)
STUDIES_PER_PAGE = 25
ACCESS_LOG_ROWS = 100


def _record(request: HttpRequest, actor: Actor, studies: list[Study], series_uid: str = "") -> None:
    """The PHI access row of this page view: one per request, with every study it shows."""
    services.phi_access_record(
        actor=actor,
        kind=AccessKind.PORTAL,
        studies=[(study.study_instance_uid, study.patient.patient_id) for study in studies],
        path=request.get_full_path(),
        series_instance_uid=series_uid,
    )


@clinician_required
def study_list(request: HttpRequest, actor: Actor) -> HttpResponse:
    form = StudySearchForm(request.GET or None)
    page = Paginator(form.studies(org=actor.organization), STUDIES_PER_PAGE).get_page(request.GET.get("page"))
    _record(request, actor, list(page))
    for study in page:
        study.modalities_display = _modalities(study)  # type: ignore[attr-defined]  # display only
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "medical/study_list.html", {"form": form, "page": page, "query": query.urlencode()})


@clinician_required
def upload(request: HttpRequest, actor: Actor) -> HttpResponse:
    form = UploadForm(request.POST, request.FILES) if request.method == "POST" else UploadForm()
    report = None
    if form.is_bound and form.is_valid():
        report = upload_receive(actor=actor, uploads=form.cleaned_data["uploads"])
        studies = {row.outcome.instance.series.study_id for row in report.stored if row.outcome}
        if studies:
            _record(request, actor, list(Study.objects.select_related("patient").filter(pk__in=studies)))
    return render(request, "medical/upload.html", {"form": form, "report": report})


def _modalities(study: Study) -> str:
    return ", ".join(m for m in study.modalities_in_study.split("\\") if m)


def _series_rows(study: Study) -> list[dict[str, Any]]:
    """Each series with its thumbnail; a series without images (a structured report, a
    presentation state) has none to render and shows its modality instead of a broken picture."""
    rows = []
    series_list = study.series.annotate(images=Count("instances", filter=Q(instances__rows__isnull=False)))
    for series in series_list.order_by("series_number", "series_instance_uid"):
        base = f"{API_ROOT}/studies/{study.study_instance_uid}/series/{series.series_instance_uid}"
        rows.append({"series": series, "thumbnail_url": f"{base}/thumbnail" if series.images else ""})
    return rows


def _study_context(
    actor: Actor, study: Study, delete_form: StudyDeleteForm | None = None, export_form: ExportForm | None = None
) -> dict[str, Any]:
    context: dict[str, Any] = {
        "study": study,
        "patient": study.patient,
        "series_rows": _series_rows(study),
        "modalities": _modalities(study),
        "is_admin": actor.is_org_admin,
        "ohif_url": ohif.viewer_url(study.study_instance_uid) if ohif.ohif_installed() else "",
    }
    if actor.is_org_admin:
        # the audited read (who looked at who looked), as the access-log API does
        context["access_log"] = access_log_read(actor=actor, filters=AccessLogFilters(study=study.study_instance_uid))[
            :ACCESS_LOG_ROWS
        ]
        context["delete_form"] = delete_form or StudyDeleteForm()
        context["export_form"] = export_form or ExportForm()
    return context


@clinician_required
def study_detail(request: HttpRequest, actor: Actor, study_uid: str) -> HttpResponse:
    study = selectors.study_get(org=actor.organization, study_uid=study_uid)
    _record(request, actor, [study])
    context = _study_context(actor, study) | diagnosis_views.ai_panel_context(study=study)
    return render(request, "medical/study_detail.html", context)


def _study_admin_action(
    request: HttpRequest,
    actor: Actor,
    study_uid: str,
    *,
    form: StudyDeleteForm | ExportForm,
    what: str,
    run: Callable[[Study], HttpResponse],
) -> HttpResponse:
    """An org admin's POST from the study page: `run(study)` the service, or show the page again
    with the form's errors (400). Another organization's study is a 404 before anything else."""
    study = selectors.study_get(org=actor.organization, study_uid=study_uid)
    if not actor.is_org_admin:
        raise PermissionDenied(f"Only organization admins may {what}.")
    if form.is_valid():
        try:
            response: HttpResponse = run(study)
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            return response
    _record(request, actor, [study])
    forms = {"delete_form": form} if isinstance(form, StudyDeleteForm) else {"export_form": form}
    return render(request, "medical/study_detail.html", _study_context(actor, study, **forms), status=400)


@require_POST
@clinician_required
def study_delete(request: HttpRequest, actor: Actor, study_uid: str) -> HttpResponse:
    form = StudyDeleteForm(request.POST)

    def run(study: Study) -> HttpResponse:
        services.study_delete(actor=actor, study=study, reason=form.cleaned_data["reason"])
        messages.success(request, f"Study {study_uid} was deleted.")
        return redirect("medical:study-list")

    return _study_admin_action(request, actor, study_uid, form=form, what="delete studies", run=run)


@require_POST
@clinician_required
def study_export(request: HttpRequest, actor: Actor, study_uid: str) -> HttpResponse:
    form = ExportForm(request.POST)

    def run(study: Study) -> HttpResponse:
        export = exports.export_start(actor=actor, study_uids=[study.study_instance_uid], options=form.options())
        return redirect("medical:export-detail", export_id=export.pk)

    return _study_admin_action(request, actor, study_uid, form=form, what="export studies", run=run)


@clinician_required
def export_detail(request: HttpRequest, actor: Actor, export_id: int) -> HttpResponse:
    if not actor.is_org_admin:
        raise PermissionDenied("Only organization admins may see exports.")
    export = exports.export_get(org=actor.organization, export_id=export_id)
    studies = list(
        Study.objects.select_related("patient").filter(
            organization=actor.organization, study_instance_uid__in=export.study_uids
        )
    )
    _record(request, actor, studies)
    return render(request, "medical/export_detail.html", {"export": export, "studies": studies})


def _frames(series: Series) -> list[dict[str, Any]]:
    """Every frame of the series in viewing order: instances by Instance Number, then their frames."""
    instances = sorted(
        series.instances.all(),
        key=lambda i: (i.instance_number is None, i.instance_number or 0, i.sop_instance_uid),
    )
    base = f"{API_ROOT}/studies/{series.study.study_instance_uid}/series/{series.series_instance_uid}/instances"
    frames = []
    for instance in instances:
        count = instance.number_of_frames or 1
        for number in range(1, count + 1):
            url = f"{base}/{instance.sop_instance_uid}"
            frames.append(
                {
                    "url": f"{url}/frames/{number}/rendered" if count > 1 else f"{url}/rendered",
                    "instance": instance.instance_number,
                    "frame": number,
                    "frames": count,
                    "sop": instance.sop_instance_uid,
                }
            )
    return frames


def _first_number(attributes: dict[str, Any], tag: str) -> float | None:
    values = (attributes.get(tag) or {}).get("Value") or []
    try:
        return float(values[0])
    except (IndexError, TypeError, ValueError):
        return None


def _initial_window(series: Series, first: Instance | None) -> tuple[float, float]:
    """Where free window/level starts: the instance's own window, else a CT soft-tissue or full-range one."""
    attributes = first.attributes if first is not None else {}
    center, width = _first_number(attributes, "00281050"), _first_number(attributes, "00281051")
    if center is not None and width is not None and width >= 1:
        return center, width
    if series.modality == "CT":
        return 40.0, 400.0
    bits = int(_first_number(attributes, "00280101") or 12)
    return float(2 ** (bits - 1)), float(2**bits)


@clinician_required
def series_viewer(request: HttpRequest, actor: Actor, study_uid: str, series_uid: str) -> HttpResponse:
    series = selectors.series_get(org=actor.organization, study_uid=study_uid, series_uid=series_uid)
    _record(request, actor, [series.study], series_uid=series.series_instance_uid)
    center, width = _initial_window(series, series.instances.order_by("instance_number").first())
    frames = _frames(series)
    return render(
        request,
        "medical/viewer.html",
        {
            **diagnosis_views.viewer_ai_context(series=series, frames=frames),
            "study": series.study,
            "patient": series.study.patient,
            "series": series,
            "viewer": {
                "frames": frames,
                "presets": [
                    {"name": name, "center": c, "width": w} for name, (c, w) in rendering.WINDOW_PRESETS.items()
                ],
                "initial": {"center": center, "width": width},
            },
            "presets": rendering.WINDOW_PRESETS,
        },
    )


@clinician_required
def ohif_app_config(request: HttpRequest, actor: Actor) -> HttpResponse:
    response = HttpResponse(ohif.app_config_js(), content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = "private, no-cache"
    return response


@clinician_required
def ohif_files(request: HttpRequest, actor: Actor, path: str = "") -> HttpResponseBase:
    # No PHI here: the viewer's code. Its DICOMweb requests record their own access rows.
    return ohif.serve(request, path)


@clinician_required
def dicom_nodes(request: HttpRequest, actor: Actor) -> HttpResponse:
    """The modalities and PACS allowed to send to the listener (org admins): list, add, (de)activate, remove."""
    if not actor.is_org_admin:
        raise PermissionDenied("Only organization admins may manage DICOM nodes.")
    form = DicomNodeForm(request.POST if request.method == "POST" and "ae_title" in request.POST else None)
    status = 200
    if request.method == "POST":
        try:
            if "ae_title" in request.POST:
                if form.is_valid():
                    node = services.dicom_node_create(actor=actor, **form.cleaned_data)
                    messages.success(request, f"{node.ae_title} may now send to {settings.DICOM_AE_TITLE}.")
                    return redirect("medical:dicom-nodes")
                status = 400
            else:
                node = selectors.dicom_node_get(org=actor.organization, node_id=int(request.POST.get("node", 0)))
                if request.POST.get("action") == "delete":
                    services.dicom_node_delete(actor=actor, node=node)
                    messages.success(request, f"{node.ae_title} was removed.")
                else:
                    services.dicom_node_update(actor=actor, node=node, data={"active": not node.active})
                return redirect("medical:dicom-nodes")
        except DomainError as exc:
            if exc.code == "not_found":
                raise Http404(exc.message) from None
            add_domain_error(form, exc)
            status = 400
        except ValueError:
            raise Http404("DICOM node not found.") from None
    context = {
        "nodes": selectors.dicom_node_list(org=actor.organization),
        "form": form,
        "listener_ae_title": settings.DICOM_AE_TITLE,
        "listener_port": settings.DICOM_PORT,
    }
    return render(request, "medical/dicom_nodes.html", context, status=status)

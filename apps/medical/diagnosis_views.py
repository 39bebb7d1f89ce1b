"""The clinician's review in the portal: the worklist, the AI suggestion beside the study and in
the viewer (probabilities, model, the saliency overlay), and the report page (write, decide on the
suggestion, save, sign, amend).

Clinicians and org admins (as every imaging page); only clinicians can sign (the service says so
to anyone else). Every page showing patient data writes its PHI access row; report pages also
their audit row (`reports.report_read_record`). Another organization's study, report or finding
is a 404.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.files.storage import default_storage
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.safestring import SafeString
from django.views.decorators.http import require_http_methods

from apps.medical import reports, selectors, services, worklist
from apps.medical.choices import AccessKind, AiDecision, FindingLevel, ReportStatus, WorklistState
from apps.medical.models import Analysis, AnalysisFinding, Report, Series, Study
from core.errors import DomainError
from core.portal.access import role_required
from core.portal.charts import PALETTE, Svg, format_number
from core.portal.forms import add_domain_error
from core.tenancy.actors import Actor
from core.tenancy.choices import Role

WORKLIST_PER_PAGE = 25
ANY_STATE = "any"
clinician_required = role_required(
    Role.CLINICIAN, message="The imaging portal is for clinicians and organization admins."
)


# --- Forms ----------------------------------------------------------------------------------------


class WorklistForm(forms.Form):
    """The worklist's filters; all optional."""

    # empty (the default) lists what still needs a read: new and AI-suggested studies
    state = forms.ChoiceField(
        required=False,
        choices=[("", "Needs review"), (ANY_STATE, "Any state"), *WorklistState.choices],
    )
    modality = forms.CharField(required=False, max_length=16)
    suggestion = forms.CharField(required=False, max_length=100, label="AI suggestion")
    date_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "The end date is before the start date.")
        return cleaned

    def filters(self) -> worklist.WorklistFilters:
        data = self.cleaned_data if self.is_valid() else {}
        return worklist.WorklistFilters(
            modality=(data.get("modality") or "").strip().upper(),
            date_from=data["date_from"].strftime("%Y%m%d") if data.get("date_from") else "",
            date_to=data["date_to"].strftime("%Y%m%d") if data.get("date_to") else "",
            state=_state_filter(data.get("state") or ""),
            suggestion=(data.get("suggestion") or "").strip(),
        )


def _state_filter(value: str) -> str:
    """The form's state → the worklist's: empty is "needs review", `any` every state."""
    if value == ANY_STATE:
        return ""
    return value or worklist.NEEDS_REVIEW


class ReportForm(forms.Form):
    findings = forms.CharField(
        required=False, max_length=reports.FINDINGS_MAX, widget=forms.Textarea(attrs={"rows": 6})
    )
    impression = forms.CharField(
        required=False, max_length=reports.IMPRESSION_MAX, widget=forms.Textarea(attrs={"rows": 3})
    )
    ai_decision = forms.ChoiceField(
        required=False,
        label="The AI suggestion",
        choices=[("", "Not decided yet"), *[(v, label) for v, label in AiDecision.choices if v]],
        widget=forms.RadioSelect,
    )
    final_label = forms.CharField(required=False, max_length=reports.LABEL_MAX, label="Final finding")

    def content(self) -> reports.ReportContent:
        data = self.cleaned_data
        return reports.ReportContent(
            findings=data.get("findings", ""),
            impression=data.get("impression", ""),
            ai_decision=data.get("ai_decision", ""),
            final_label=data.get("final_label", ""),
        )


# --- The AI panel (study page and viewer) -------------------------------------------------------------


def probability_chart(probabilities: dict[str, float], *, highlight: str) -> SafeString:
    """Horizontal bars on a fixed 0 to 1 scale, most probable first; the suggested class highlighted."""
    rows = sorted(probabilities.items(), key=lambda item: (-float(item[1]), item[0]))[:12]
    label_w = max(80, 12 + 7 * max((len(label) for label, _ in rows), default=0))
    bar_w, row_h = 220, 18
    svg = Svg(width=label_w + bar_w + 50, height=row_h * max(len(rows), 1) + 6, label="Class probabilities")
    for i, (label, value) in enumerate(rows):
        y = 3 + i * row_h
        svg.text(label_w - 6, y + 12, label, anchor="end")
        svg.add("rect", x=label_w, y=y + 2, width=bar_w, height=row_h - 5, fill=PALETTE["grid"])
        fill = PALETTE["orange"] if label == highlight else PALETTE["blue"]
        svg.add("rect", x=label_w, y=y + 2, width=max(1.0, bar_w * float(value)), height=row_h - 5, fill=fill)
        svg.text(label_w + bar_w + 4, y + 12, format_number(float(value) * 100, 1) + "%", size=10)
    return svg.render()


def _analysis_shown(study: Study) -> Analysis | None:
    return reports.latest_succeeded_analysis(study=study)


def _finding_overlay(finding: AnalysisFinding) -> dict[str, Any]:
    from django.urls import reverse

    assert finding.instance is not None
    return {
        "finding": finding.pk,
        "sop": finding.instance.sop_instance_uid,
        "frame": finding.frame_number or 1,
        "series": finding.series.series_instance_uid,
        "label": finding.suggested_label,
        "probability": finding.probability,
        "url": reverse("medical:finding-saliency", args=[finding.pk]) if finding.saliency_file else "",
    }


def ai_panel_context(*, study: Study) -> dict[str, Any]:
    """What the study page shows of the AI: the latest suggestion, its probabilities, the model,
    where the finding is (the viewer link jumps to the slice with the overlay), and the report."""
    analysis = _analysis_shown(study)
    latest_report = Report.objects.filter(study=study).order_by("-version").first()
    if analysis is None:
        return {"ai": None, "latest_report": latest_report}
    instance_findings = list(
        AnalysisFinding.objects.select_related("series", "instance")
        .filter(analysis=analysis, level=FindingLevel.INSTANCE, instance__isnull=False)
        .order_by("-probability", "id")
    )
    top = next((f for f in instance_findings if f.saliency_file), instance_findings[0] if instance_findings else None)
    version = analysis.model_version
    return {
        "ai": {
            "analysis": analysis,
            "model_name": version.registered_model.name,
            "model_version": version.number,
            "artifact_sha256": version.artifact_sha256,
            "chart": probability_chart(dict(analysis.probabilities or {}), highlight=analysis.suggested_label),
            "top": _finding_overlay(top) if top else None,
        },
        "latest_report": latest_report,
    }


def viewer_ai_context(*, series: Series, frames: list[dict[str, Any]]) -> dict[str, Any]:
    """The viewer's overlays: per finding of this series with a saliency PNG, the frame index it
    concerns (so the viewer can jump there) and the overlay's URL."""
    analysis = _analysis_shown(series.study)
    if analysis is None:
        return {"ai": None, "ai_overlays": []}
    index = {(frame["sop"], frame["frame"]): position for position, frame in enumerate(frames)}
    overlays = []
    for finding in (
        AnalysisFinding.objects.select_related("series", "instance")
        .filter(analysis=analysis, series=series, level=FindingLevel.INSTANCE, instance__isnull=False)
        .exclude(saliency_file="")
        .order_by("-probability", "id")
    ):
        overlay = _finding_overlay(finding)
        position = index.get((overlay["sop"], overlay["frame"]))
        if position is not None:
            overlays.append({**overlay, "index": position})
    version = analysis.model_version
    return {
        "ai": {
            "analysis": analysis,
            "model_name": version.registered_model.name,
            "model_version": version.number,
            "chart": probability_chart(dict(analysis.probabilities or {}), highlight=analysis.suggested_label),
        },
        "ai_overlays": overlays,
    }


@clinician_required
def finding_saliency(request: HttpRequest, actor: Actor, finding_id: int) -> FileResponse:
    """The saliency PNG of one finding (it shows where in the patient's image the model looked)."""
    finding = (
        AnalysisFinding.objects.select_related("analysis__study__patient", "series", "instance")
        .filter(organization=actor.organization, pk=finding_id)
        .exclude(saliency_file="")
        .first()
    )
    if finding is None:
        raise Http404("Finding not found.")
    study = finding.analysis.study
    services.phi_access_record(
        actor=actor,
        kind=AccessKind.ANALYSIS,
        studies=[(study.study_instance_uid, study.patient.patient_id)],
        path=request.get_full_path(),
        series_instance_uid=finding.series.series_instance_uid,
        sop_instance_uid=finding.instance.sop_instance_uid if finding.instance else "",
    )
    response = FileResponse(default_storage.open(finding.saliency_file, "rb"), content_type="image/png")
    response["Cache-Control"] = "private, no-store"
    return response


# --- The worklist ---------------------------------------------------------------------------------


@clinician_required
def worklist_page(request: HttpRequest, actor: Actor) -> HttpResponse:
    form = WorklistForm(request.GET or None)
    studies = worklist.worklist_studies(org=actor.organization, filters=form.filters())
    page = Paginator(studies, WORKLIST_PER_PAGE).get_page(request.GET.get("page"))
    services.phi_access_record(
        actor=actor,
        kind=AccessKind.PORTAL,
        studies=[(study.study_instance_uid, study.patient.patient_id) for study in page],
        path=request.get_full_path(),
    )
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "page": page,
        "query": query.urlencode(),
        "states": dict(WorklistState.choices),
        "suggestions": worklist.worklist_suggestions(org=actor.organization),
        "modalities": worklist.worklist_modalities(org=actor.organization),
    }
    return render(request, "medical/worklist.html", context, status=400 if form.errors else 200)


# --- The report ----------------------------------------------------------------------------------


def _report_context(actor: Actor, report: Report, form: ReportForm | None = None) -> dict[str, Any]:
    chain = list(reports.report_list(org=actor.organization, study=report.study))
    analysis = report.analysis
    ai = None
    if analysis is not None:
        version = analysis.model_version
        ai = {
            "analysis": analysis,
            "model_name": version.registered_model.name,
            "model_version": version.number,
            "chart": probability_chart(dict(analysis.probabilities or {}), highlight=analysis.suggested_label),
            "classes": list((version.input_schema or {}).get("classes") or analysis.probabilities or []),
        }
    if form is None and report.status == ReportStatus.DRAFT:
        form = ReportForm(
            initial={
                "findings": report.findings,
                "impression": report.impression,
                "ai_decision": report.ai_decision,
                "final_label": report.final_label,
            }
        )
    return {
        "report": report,
        "study": report.study,
        "patient": report.study.patient,
        "chain": chain,
        "amended_by": reports.report_amended_by(report),
        "ai": ai,
        "form": form,
        "can_sign": actor.api_key is None and actor.role == Role.CLINICIAN,
    }


def _show_report(
    request: HttpRequest, actor: Actor, report: Report, *, form: ReportForm | None = None, status: int = 200
) -> HttpResponse:
    reports.report_read_record(actor=actor, study=report.study, reports=[report], path=request.get_full_path())
    return render(request, "medical/report.html", _report_context(actor, report, form), status=status)


@require_http_methods(["GET", "POST"])
@clinician_required
def study_report(request: HttpRequest, actor: Actor, study_uid: str) -> HttpResponse:
    """The study's report: its latest version, or (POST) a new draft reviewing the latest analysis."""
    study = selectors.study_get(org=actor.organization, study_uid=study_uid)
    latest = Report.objects.filter(study=study).order_by("-version").first()
    if request.method == "POST":
        try:
            report = reports.report_create(actor=actor, study=study)
        except DomainError as exc:
            messages.error(request, exc.message)
            return redirect("medical:study-detail", study_uid=study.study_instance_uid)
        return redirect("medical:report-detail", report_id=report.pk)
    if latest is not None:
        return redirect("medical:report-detail", report_id=latest.pk)
    return redirect("medical:study-detail", study_uid=study.study_instance_uid)


@require_http_methods(["GET", "POST"])
@clinician_required
def report_detail(request: HttpRequest, actor: Actor, report_id: int) -> HttpResponse:
    """One report version. POST `action`: `save` or `sign` a draft (with the form's content), `amend` a signed one."""
    report = reports.report_get(org=actor.organization, report_id=report_id)
    if request.method == "GET":
        return _show_report(request, actor, report)
    action = request.POST.get("action", "")
    form = ReportForm(request.POST) if action in {"save", "sign"} else None
    try:
        if action == "amend":
            amendment = reports.report_amend(actor=actor, report=report)
            messages.success(
                request, f"Version {amendment.version} started as an amendment of version {report.version}."
            )
            return redirect("medical:report-detail", report_id=amendment.pk)
        if form is None:
            raise Http404("Unknown action.")
        if not form.is_valid():
            return _show_report(request, actor, report, form=form, status=400)
        report = reports.report_update(actor=actor, report=report, content=form.content())
        if action == "sign":
            report = reports.report_sign(actor=actor, report=report)
            messages.success(request, f"Version {report.version} is signed.")
        else:
            messages.success(request, "Draft saved.")
        return redirect("medical:report-detail", report_id=report.pk)
    except DomainError as exc:
        if form is None:  # the amendment was refused: say so on the version's page
            messages.error(request, exc.message)
            return redirect("medical:report-detail", report_id=report.pk)
        add_domain_error(form, exc)
        report = reports.report_get(org=actor.organization, report_id=report_id)
        status = {"permission_denied": 403, "conflict": 409}.get(type(exc).code, 400)
        return _show_report(
            request, actor, report, form=form if report.status == ReportStatus.DRAFT else None, status=status
        )

"""The clinician's report on a study: drafts, the signature, amendments, and the verified SR.

A study has one chain of reports. Version 1 is created as a draft (tied to the AI analysis the
clinician reviews: by default the latest succeeded analysis of the study), edited while it is a
draft, and signed. Signing is a person's attestation:

- only a signed-in user whose membership role is `clinician` may sign. An org admin manages the
  archive and the models but is not, by that role, a reporting clinician; an API key is no person
  at all. Both may create and edit drafts (an EHR/RIS integration can push a dictated draft), but
  the signature is always a clinician's, in the portal (session with CSRF).
- the report must say something: findings or an impression.
- when the report reviews an AI suggestion, the clinician's decision is required:
  `accepted` sets the final label to the suggestion (a different label is refused: that is
  `changed`); `changed` needs a final label different from the suggestion; `rejected` means
  "the AI's finding is wrong" — the final label is optional (empty: no finding stated beyond the
  text), and when given must differ from the suggestion. Without an AI suggestion there is no
  decision to make and the final label is free text.

A signed report is immutable (the service refuses, and `Report.save`/the queryset refuse at the
model level too). It keeps who signed, when, and the sha256 of its canonical content
(`report_content_canonical`), so any copy can be checked against the signature. On signing, a new
DICOM SR instance is written into the study (`VerificationFlag` VERIFIED, the verifying observer,
organization and decision: `structured_reports.ai_result_sr(..., verification=...)`), stored
through the archive's ordinary path with `received_via=ai` (routing rules skip AI output).

An amendment is a new draft version linked to the signed report it amends (`amends`), starting
from its content; the amended version stays readable and unchanged. Only a signed report can be
amended, and only once (the next amendment amends the amendment).

Every write and every read of a report is an audit row; reads also write a PHI access row
(`AccessKind.REPORT`).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pydicom
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Max, QuerySet
from django.utils import timezone
from pydicom.uid import generate_uid

from apps.medical import services, structured_reports
from apps.medical.analysis import algorithm_of, derived_instances_store, next_series_number
from apps.medical.choices import AccessKind, AiDecision, FindingLevel, ReportStatus
from apps.medical.models import Analysis, AnalysisFinding, Instance, Report, Study
from core.audit.services import audit_record
from core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from core.jobs.choices import JobStatus
from core.tenancy.actors import Actor
from core.tenancy.choices import Role

logger = logging.getLogger(__name__)

FINDINGS_MAX = 20_000
IMPRESSION_MAX = 5_000
LABEL_MAX = 100
# Series numbers of the report SRs start here, clear of the modality's series and of the AI results.
REPORT_SR_SERIES_BASE = 9100
SIGNATURE_NEEDS_PERSON = (
    "Signing is a person's attestation: only a clinician signed in to the portal can sign a report, never an API key."
)
# The final label of a rejected suggestion when the clinician names none.
REJECTED_LABEL = "no finding"
REPORT_IMAGE_MODALITIES_EXCLUDED = frozenset({"SR", "KO", "PR", "SEG", "DOC"})


# --- Reads ---------------------------------------------------------------------------------------


def report_get(*, org: Any, report_id: int) -> Report:
    """A report of `org` (another organization's is not found)."""
    report = (
        Report.objects.select_related(
            "study",
            "study__patient",
            "analysis",
            "analysis__model_version",
            "analysis__model_version__registered_model",
            "amends",
            "amendment",
            "author",
            "signed_by",
        )
        .filter(organization=org, pk=report_id)
        .first()
    )
    if report is None:
        raise NotFound(f"Report {report_id} not found.")
    return report


def report_list(*, org: Any, study: Study) -> QuerySet[Report]:
    """Every version of the study's report, newest first (the chain: each `amends` the previous)."""
    return (
        Report.objects.select_related(
            "study",
            "analysis",
            "analysis__model_version",
            "analysis__model_version__registered_model",
            "amends",
            "amendment",
            "author",
            "signed_by",
        )
        .filter(organization=org, study=study)
        .order_by("-version", "-id")
    )


def report_amended_by(report: Report) -> Report | None:
    """The version that amends `report`, if any (the reverse of the one-to-one `amends`)."""
    return Report.objects.filter(amends=report).first()


def latest_succeeded_analysis(*, study: Study) -> Analysis | None:
    """The newest analysis of the study whose job succeeded with a suggestion."""
    return (
        Analysis.objects.select_related("model_version", "model_version__registered_model")
        .filter(organization=study.organization, study=study, job__status=JobStatus.SUCCEEDED)
        .exclude(suggested_label="")
        .order_by("-completed_at", "-created_at", "-id")
        .first()
    )


def report_read_record(*, actor: Actor, study: Study, reports: Sequence[Report], path: str = "") -> None:
    """A read of reports (the API's list or detail, a portal page): one audit row, one PHI access row."""
    audit_record(
        actor=actor,
        action="medical.report.read",
        obj=reports[0] if len(reports) == 1 else study,
        details={"study": study.study_instance_uid, "reports": [report.pk for report in reports]},
    )
    services.phi_access_record(
        actor=actor,
        kind=AccessKind.REPORT,
        studies=[(study.study_instance_uid, study.patient.patient_id)],
        path=path,
    )


# --- The content and its hash --------------------------------------------------------------------


def report_content_canonical(report: Report) -> bytes:
    """The signed content as canonical JSON (sorted keys, no spaces, UTF-8): what the hash covers.

    It names the study, the version and what it amends, the AI suggestion reviewed (analysis,
    model version, suggested label and probability), the clinician's text and decision, and who
    signed when. Anyone holding the report's fields can recompute it.
    """
    analysis = report.analysis
    content: dict[str, Any] = {
        "study_instance_uid": report.study.study_instance_uid,
        "version": report.version,
        "amends": report.amends.content_sha256 if report.amends_id and report.amends else None,
        "analysis": None
        if analysis is None
        else {
            "id": analysis.pk,
            "model": analysis.model_version.registered_model.name,
            "model_version": analysis.model_version.number,
            "artifact_sha256": analysis.model_version.artifact_sha256,
            "suggested_label": analysis.suggested_label,
            "probability": analysis.probability,
        },
        "findings": report.findings,
        "impression": report.impression,
        "ai_decision": report.ai_decision,
        "final_label": report.final_label,
        "signed_by": report.signed_by.get_username() if report.signed_by else None,
        "signed_at": report.signed_at.isoformat() if report.signed_at else None,
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def report_content_sha256(report: Report) -> str:
    return hashlib.sha256(report_content_canonical(report)).hexdigest()


# --- Writes --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportContent:
    """The fields a clinician writes; None leaves a field as it is (on update)."""

    findings: str | None = None
    impression: str | None = None
    ai_decision: str | None = None
    final_label: str | None = None


def _clean(content: ReportContent) -> dict[str, str]:
    """Trimmed, length-checked values of the fields given."""
    limits = {"findings": FINDINGS_MAX, "impression": IMPRESSION_MAX, "final_label": LABEL_MAX}
    values: dict[str, str] = {}
    errors: dict[str, list[str]] = {}
    for name in ("findings", "impression", "ai_decision", "final_label"):
        value = getattr(content, name)
        if value is None:
            continue
        if not isinstance(value, str):
            errors[name] = ["Must be text."]
            continue
        value = value.strip()
        if "\x00" in value:
            errors[name] = ["Must not contain NUL characters."]
            continue
        if name in limits and len(value) > limits[name]:
            errors[name] = [f"At most {limits[name]} characters."]
            continue
        values[name] = value
    decision = values.get("ai_decision")
    if decision is not None and decision not in AiDecision.values:
        errors["ai_decision"] = [f"One of {', '.join(v for v in AiDecision.values if v)} (or empty)."]
    if errors:
        raise ValidationFailed("The report is not valid.", fields=errors)
    return values


def _check_decision(report: Report, *, complete: bool) -> None:
    """The decision agrees with the AI suggestion (and, when `complete`, is there when needed).

    `accepted` copies the suggestion into the final label (a different one is refused).
    """
    suggestion = report.analysis.suggested_label if report.analysis_id and report.analysis else ""
    decision, label = report.ai_decision, report.final_label
    if not suggestion:
        if decision:
            raise ValidationFailed(
                "This report reviews no AI suggestion, so there is no AI decision to make.",
                code="no_ai_suggestion",
                fields={"ai_decision": ["Leave empty: the report has no AI suggestion."]},
            )
        return
    if decision == AiDecision.ACCEPTED:
        if label and label != suggestion:
            raise ValidationFailed(
                f"Accepting the suggestion makes the final label {suggestion!r}; to record another label, "
                "choose 'changed'.",
                code="decision_mismatch",
                fields={"final_label": [f"Must be {suggestion!r} (or empty) when accepted."]},
            )
        report.final_label = suggestion
    elif decision == AiDecision.CHANGED:
        if label == suggestion:
            raise ValidationFailed(
                "A changed suggestion needs a final label different from the AI's.",
                code="decision_mismatch",
                fields={"final_label": [f"Must differ from the suggestion {suggestion!r}."]},
            )
        if complete and not label:
            raise ValidationFailed(
                "Name the finding that replaces the AI's suggestion.",
                code="final_label_required",
                fields={"final_label": ["Required when the suggestion is changed."]},
            )
    elif decision == AiDecision.REJECTED:
        if label == suggestion or (not label and suggestion.casefold() == REJECTED_LABEL):
            raise ValidationFailed(
                "A rejected suggestion cannot be the final label; choose 'accepted'.",
                code="decision_mismatch",
                fields={"final_label": [f"Must differ from the suggestion {suggestion!r}, or be empty."]},
            )
        if complete and not label:
            # "the AI's finding is not there": the signed record names it, so the SR's finding is coded
            report.final_label = REJECTED_LABEL
    elif complete:
        raise ValidationFailed(
            "Say whether you accept, reject or change the AI's suggestion before signing.",
            code="decision_required",
            fields={"ai_decision": ["Required: accepted, rejected or changed."]},
        )


def _analysis_for(*, study: Study, analysis_id: int | None, default_latest: bool) -> Analysis | None:
    if analysis_id is None:
        return latest_succeeded_analysis(study=study) if default_latest else None
    analysis = (
        Analysis.objects.select_related("job", "model_version", "model_version__registered_model")
        .filter(organization=study.organization, pk=analysis_id)
        .first()
    )
    if analysis is None or analysis.study_id != study.pk:
        raise ValidationFailed(
            f"Analysis {analysis_id} is not an analysis of this study.",
            code="unknown_analysis",
            fields={"analysis": ["Not an analysis of this study."]},
        )
    if analysis.job.status != JobStatus.SUCCEEDED or not analysis.suggested_label:
        raise ValidationFailed(
            f"Analysis {analysis_id} has no result yet (its job is {analysis.job.status}).",
            code="analysis_not_ready",
            fields={"analysis": ["The analysis has not succeeded."]},
        )
    return analysis


def _require_draft(report: Report, what: str) -> None:
    if report.status != ReportStatus.DRAFT:
        raise Conflict(
            f"Report version {report.version} is signed and cannot be {what}; amend it instead.",
            code="report_signed",
        )


@transaction.atomic
def report_create(
    *,
    actor: Actor,
    study: Study,
    content: ReportContent = ReportContent(),
    analysis_id: int | None = None,
    default_latest_analysis: bool = True,
) -> Report:
    """Start version 1 of the study's report, as a draft.

    Args:
        analysis_id: the analysis it reviews; None takes the latest succeeded one, unless
            `default_latest_analysis` is False (a report without AI suggestion).

    Raises:
        Conflict: the study already has a report (`report_exists`; change it, or amend it).
        ValidationFailed: an analysis of another study or without a result; bad fields.
    """
    if study.organization_id != actor.organization.pk:
        raise NotFound(f"Study {study.study_instance_uid} not found.")
    Study.objects.select_for_update().filter(pk=study.pk).first()  # one chain per study: serialise creators
    existing = Report.objects.filter(study=study).order_by("-version").first()
    if existing is not None:
        raise Conflict(
            f"The study already has a report (version {existing.version}, {existing.status}); "
            "edit the draft or amend the signed version.",
            code="report_exists",
        )
    values = _clean(content)
    report = Report(
        organization=actor.organization,
        study=study,
        analysis=_analysis_for(study=study, analysis_id=analysis_id, default_latest=default_latest_analysis),
        version=1,
        author=actor.user,
        **values,
    )
    _check_decision(report, complete=False)
    report.save()
    audit_record(
        actor=actor,
        action="medical.report.create",
        obj=report,
        details={"study": study.study_instance_uid, "version": 1, "analysis": report.analysis_id},
    )
    return report


def _locked(report: Report) -> Report:
    """The report's row, locked for this transaction and read fresh (its status may have moved)."""
    Report.objects.select_for_update().filter(pk=report.pk).first()
    return report_get(org=report.organization, report_id=report.pk)


@transaction.atomic
def report_update(*, actor: Actor, report: Report, content: ReportContent) -> Report:
    """Change a draft's findings, impression, decision or final label (fields left None stay).

    Raises:
        Conflict: the report is signed (`report_signed`): it is immutable; amend it.
    """
    report = _locked(report)
    _require_draft(report, "changed")
    values = _clean(content)
    for name, value in values.items():
        setattr(report, name, value)
    _check_decision(report, complete=False)
    report.save(update_fields=[*values, "final_label", "updated_at"] if values else ["updated_at"])
    audit_record(
        actor=actor,
        action="medical.report.update",
        obj=report,
        details={"study": report.study.study_instance_uid, "version": report.version, "fields": sorted(values)},
    )
    return report


def _require_clinician(actor: Actor) -> None:
    """Only a person whose membership in the organization is `clinician` signs."""
    if actor.api_key is not None or actor.user is None:
        raise PermissionDenied(SIGNATURE_NEEDS_PERSON, code="signature_requires_person")
    if actor.role != Role.CLINICIAN:  # the role of the user's membership in this organization
        raise PermissionDenied(
            "Only users with the clinician role can sign reports.", code="signature_requires_clinician"
        )


@transaction.atomic
def report_sign(*, actor: Actor, report: Report) -> Report:
    """Sign a draft: it becomes VERIFIED and immutable, and a verified SR goes into the study.

    Raises:
        PermissionDenied: an API key, or a user who is not a clinician (403).
        Conflict: already signed (`report_signed`).
        ValidationFailed: no findings nor impression; a missing or inconsistent AI decision.
    """
    _require_clinician(actor)
    report = _locked(report)
    _require_draft(report, "signed again")
    if not (report.findings.strip() or report.impression.strip()):
        raise ValidationFailed(
            "Write the findings or the impression before signing.",
            code="report_empty",
            fields={"impression": ["Findings or an impression are required to sign."]},
        )
    _check_decision(report, complete=True)
    assert actor.user is not None  # _require_clinician
    report.status = ReportStatus.SIGNED
    report.signed_by = actor.user
    # DICOM DT has no finer than microseconds; keep the signed time exactly as the SR states it.
    report.signed_at = timezone.now()
    report.content_sha256 = report_content_sha256(report)
    report.sr_sop_instance_uid = _verified_sr_store(actor=actor, report=report)
    report.save(
        update_fields=[
            "status",
            "signed_by",
            "signed_at",
            "content_sha256",
            "sr_sop_instance_uid",
            "final_label",
            "updated_at",
        ]
    )
    audit_record(
        actor=actor,
        action="medical.report.sign",
        obj=report,
        details={
            "study": report.study.study_instance_uid,
            "version": report.version,
            "content_sha256": report.content_sha256,
            "ai_decision": report.ai_decision,
            "final_label": report.final_label,
            "sr_sop_instance_uid": report.sr_sop_instance_uid,
        },
    )
    return report


@transaction.atomic
def report_amend(*, actor: Actor, report: Report) -> Report:
    """A new draft version amending the signed `report`, starting from its content.

    Raises:
        Conflict: the report is a draft (`report_not_signed`), or already amended (`report_amended`).
    """
    report = _locked(report)
    if report.status != ReportStatus.SIGNED:
        raise Conflict("Only a signed report can be amended; edit the draft instead.", code="report_not_signed")
    amendment = report_amended_by(report)
    if amendment is not None:
        raise Conflict(
            f"Version {report.version} was already amended by version {amendment.version}; amend that one.",
            code="report_amended",
        )
    latest = Report.objects.filter(study=report.study).aggregate(latest=Max("version"))["latest"] or 0
    draft = Report(
        organization=report.organization,
        study=report.study,
        analysis=report.analysis,
        version=latest + 1,
        amends=report,
        findings=report.findings,
        impression=report.impression,
        ai_decision=report.ai_decision,
        final_label=report.final_label,
        author=actor.user,
    )
    draft.save()
    audit_record(
        actor=actor,
        action="medical.report.amend",
        obj=draft,
        details={"study": report.study.study_instance_uid, "version": draft.version, "amends": report.pk},
    )
    return draft


# --- The verified SR -------------------------------------------------------------------------------


def observer_name(user: Any) -> str:
    """The signer as a DICOM PN (`Family^Given`); the username when the account has no name."""
    family, given = (user.last_name or "").strip(), (user.first_name or "").strip()
    if not (family or given):
        return f"{str(user.get_username())[:63]}^"  # one component, said explicitly (PS3.5 6.2.1.2)
    return f"{family[:64]}^{given[:64]}"


def _headers(instance: Instance) -> pydicom.Dataset:
    # read into memory: the SR writer copies the datasets, and a dataset read from an open file cannot be copied
    with default_storage.open(instance.file, "rb") as handle:
        return pydicom.dcmread(io.BytesIO(handle.read()), stop_before_pixels=True)


def _source_instances(analysis: Analysis) -> list[Instance]:
    """The images the analysis's findings concern (instance-level findings, else every image of
    the series it judged)."""
    ids = list(
        AnalysisFinding.objects.filter(analysis=analysis, instance__isnull=False)
        .order_by("instance_id")
        .values_list("instance_id", flat=True)
        .distinct()
    )
    if ids:
        return list(Instance.objects.filter(pk__in=ids).order_by("series_id", "instance_number", "pk"))
    series_ids = AnalysisFinding.objects.filter(analysis=analysis).values_list("series_id", flat=True)
    return list(
        Instance.objects.filter(series_id__in=series_ids)
        .exclude(series__modality__in=REPORT_IMAGE_MODALITIES_EXCLUDED)
        .order_by("series_id", "instance_number", "pk")
    )


def _verified_sr_store(*, actor: Actor, report: Report) -> str:
    """Write the report's VERIFIED SR into the study; returns its SOP Instance UID ('' when the
    report reviews no AI analysis: the structured result is the AI's finding, verified)."""
    analysis = report.analysis
    if analysis is None:
        return ""
    assert report.signed_by is not None and report.signed_at is not None
    sources = _source_instances(analysis)
    if not sources:
        raise Conflict("The analysis's images are no longer in the archive.", code="sources_missing")
    datasets = [_headers(instance) for instance in sources]
    by_uid = {instance.pk: instance.sop_instance_uid for instance in sources}
    per_instance = [
        (by_uid[finding.instance_id], finding.suggested_label, float(finding.probability))
        for finding in AnalysisFinding.objects.filter(
            analysis=analysis, level=FindingLevel.INSTANCE, instance_id__in=list(by_uid)
        ).order_by("id")
        if finding.instance_id is not None
    ]
    version = analysis.model_version
    sr = structured_reports.ai_result_sr(
        study=datasets,
        finding=structured_reports.AiFinding(
            label=analysis.suggested_label,
            probability=float(analysis.probability or 0.0),
            probabilities={str(k): float(v) for k, v in (analysis.probabilities or {}).items()},
            source_instances=datasets,
            per_instance=per_instance,
        ),
        algorithm=algorithm_of(version),
        series_instance_uid=generate_uid(),
        sop_instance_uid=generate_uid(),
        series_number=next_series_number(report.study, minimum=REPORT_SR_SERIES_BASE),
        instance_number=report.version,
        verification=structured_reports.Verification(
            observer_name=observer_name(report.signed_by),
            organization=report.organization.name,
            when=report.signed_at,
            decision=report.ai_decision,
            final_label=report.final_label,
            findings=report.findings,
            impression=report.impression,
        ),
    )
    try:
        derived_instances_store(actor=actor, datasets=[sr])
    except Conflict as exc:
        raise Conflict(f"The archive refused the report's SR: {exc.message}", code="sr_refused") from exc
    return str(sr.SOPInstanceUID)

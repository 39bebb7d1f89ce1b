"""The clinician's worklist: the organization's studies with their review state, filtered.

A study's state is derived, never stored (`WorklistState`): `reported` once a signed report
exists; `labelled` when it was labelled training data of one of the organization's classifier
training runs (someone already read it and gave it its label: the imaging lead's CSV, by study,
series or instance UID); `ai_suggested` when an analysis of it succeeded with a suggestion;
`new` otherwise. Studies *needing review* (`NEEDS_REVIEW`, the portal's default filter) are the
new and AI-suggested ones, so a hospital's historic, already-read studies do not crowd the
clinician's list. The suggestion shown (and filtered on) is the latest succeeded analysis's
label. Newest first: by study date and time, then by when the archive received the study.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Case, Exists, OuterRef, Q, QuerySet, Subquery, Value, When

from apps.medical.choices import ReportStatus, WorklistState
from apps.medical.models import Analysis, Instance, Report, Series, Study
from core.jobs.choices import JobStatus
from core.tenancy.models import Organization

CLASSIFIER_KIND = "medical.image_classifier"
# the pseudo-state of the portal's default filter: what still needs a clinician's read
NEEDS_REVIEW = "needs_review"
NEEDS_REVIEW_STATES = (WorklistState.NEW.value, WorklistState.AI_SUGGESTED.value)


@dataclass(frozen=True)
class WorklistFilters:
    modality: str = ""  # any series of the study has it (case-insensitive)
    date_from: str = ""  # YYYYMMDD, inclusive
    date_to: str = ""
    state: str = ""  # a WorklistState value, NEEDS_REVIEW, or "" for all
    suggestion: str = ""  # the latest suggested label (exact, case-insensitive)


def _succeeded(org: Organization) -> QuerySet[Analysis]:
    return Analysis.objects.filter(organization=org, study_id=OuterRef("pk"), job__status=JobStatus.SUCCEEDED).exclude(
        suggested_label=""
    )


def labelled_study_ids(*, org: Organization) -> set[int]:
    """The organization's studies that were labelled training data of a succeeded classifier
    training run (a label names a study, series or SOP instance UID)."""
    from ml.models import TrainingRun

    uids: set[str] = set()
    runs = TrainingRun.objects.filter(organization=org, kind=CLASSIFIER_KIND, job__status=JobStatus.SUCCEEDED)
    for data in runs.values_list("data", flat=True):
        labels = (data or {}).get("labels") or [] if isinstance(data, dict) else []
        uids.update(str(item.get("uid")) for item in labels if isinstance(item, dict) and item.get("uid"))
    if not uids:
        return set()
    ids: set[int] = set()
    chunk = 5000  # keeps each IN list well under the databases' parameter limits
    ordered = sorted(uids)
    for start in range(0, len(ordered), chunk):
        part = ordered[start : start + chunk]
        ids.update(Study.objects.filter(organization=org, study_instance_uid__in=part).values_list("pk", flat=True))
        ids.update(
            Series.objects.filter(organization=org, series_instance_uid__in=part).values_list("study_id", flat=True)
        )
        ids.update(
            Instance.objects.filter(organization=org, sop_instance_uid__in=part).values_list(
                "series__study_id", flat=True
            )
        )
    return ids


def worklist_studies(*, org: Organization, filters: WorklistFilters = WorklistFilters()) -> QuerySet[Study]:
    """The organization's studies annotated with `worklist_state`, `suggested_label`,
    `suggested_probability` and `has_draft`, filtered, newest first."""
    latest = _succeeded(org).order_by("-completed_at", "-created_at", "-id")
    labelled = labelled_study_ids(org=org)
    studies = (
        Study.objects.select_related("patient")
        .filter(organization=org)
        .annotate(
            has_signed=Exists(Report.objects.filter(study_id=OuterRef("pk"), status=ReportStatus.SIGNED)),
            has_draft=Exists(Report.objects.filter(study_id=OuterRef("pk"), status=ReportStatus.DRAFT)),
            has_suggestion=Exists(_succeeded(org)),
            suggested_label=Subquery(latest.values("suggested_label")[:1]),
            suggested_probability=Subquery(latest.values("probability")[:1]),
        )
        .annotate(
            worklist_state=Case(
                When(has_signed=True, then=Value(WorklistState.REPORTED.value)),
                When(Q(pk__in=labelled), then=Value(WorklistState.LABELLED.value)),
                When(has_suggestion=True, then=Value(WorklistState.AI_SUGGESTED.value)),
                default=Value(WorklistState.NEW.value),
            )
        )
    )
    if filters.modality:
        studies = studies.filter(
            Exists(Series.objects.filter(study_id=OuterRef("pk"), modality__iexact=filters.modality))
        )
    if filters.date_from:
        studies = studies.filter(study_date__gte=filters.date_from)
    if filters.date_to:
        studies = studies.filter(study_date__lte=filters.date_to)
    if filters.state == NEEDS_REVIEW:
        studies = studies.filter(worklist_state__in=NEEDS_REVIEW_STATES)
    elif filters.state:
        studies = studies.filter(worklist_state=filters.state)
    if filters.suggestion:
        studies = studies.filter(suggested_label__iexact=filters.suggestion)
    return studies.order_by("-study_date", "-study_time", "-created_at", "-id")


def worklist_suggestions(*, org: Organization) -> list[str]:
    """Every label a succeeded analysis of the organization suggested (for the filter's choices)."""
    labels = (
        Analysis.objects.filter(organization=org, job__status=JobStatus.SUCCEEDED)
        .exclude(suggested_label="")
        .values_list("suggested_label", flat=True)
        .distinct()
    )
    return sorted(set(labels))


def worklist_modalities(*, org: Organization) -> list[str]:
    return sorted(set(Series.objects.filter(organization=org).exclude(modality="").values_list("modality", flat=True)))

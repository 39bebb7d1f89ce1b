"""Monitoring of the image classifiers in use: what each version suggests, week by week, and how
often the clinicians who signed the reports agreed with it.

Two signals, per model version and ISO week (weeks start on Monday, in UTC):

- **Suggestion shares**: of the analyses that finished that week, the share of each suggested
  class. A model whose mix of suggestions drifts (a class that is suddenly twice as frequent) is
  seeing different studies, or has become wrong on them, before any clinician says so.
- **Agreement rate**: of the analyses whose report was signed that week, the share the clinician
  accepted. An amended report counts once, with the decision of its latest signed version (the
  one in force); a report that changed or rejected the suggestion is a disagreement. The week is
  the signature's, not the analysis's: agreement is measured when the clinicians decide.

Reads only; always scoped to the organization.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Q
from django.db.models.functions import TruncWeek

from apps.medical.choices import AiDecision, ReportStatus
from apps.medical.models import Analysis, Report
from core.jobs.choices import JobStatus
from core.tenancy.models import Organization
from ml.models import RegisteredModel

DEFAULT_WEEKS = 12


@dataclass
class MonitoringWeek:
    """One version's week: its suggestions and the clinicians' decisions on its analyses."""

    week: dt.date
    analyses: int = 0
    suggestions: dict[str, int] = field(default_factory=dict)
    signed: int = 0
    accepted: int = 0

    @property
    def shares(self) -> dict[str, float]:
        return {label: count / self.analyses for label, count in sorted(self.suggestions.items()) if self.analyses}

    @property
    def agreement_rate(self) -> float | None:
        return self.accepted / self.signed if self.signed else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "week": self.week.isoformat(),
            "analyses": self.analyses,
            "suggestions": dict(sorted(self.suggestions.items())),
            "shares": self.shares,
            "signed_reports": self.signed,
            "accepted": self.accepted,
            "agreement_rate": self.agreement_rate,
        }


@dataclass
class VersionMonitoring:
    version: int
    weeks: list[MonitoringWeek]

    @property
    def analyses(self) -> int:
        return sum(week.analyses for week in self.weeks)

    @property
    def agreement_rate(self) -> float | None:
        signed = sum(week.signed for week in self.weeks)
        return sum(week.accepted for week in self.weeks) / signed if signed else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "analyses": self.analyses,
            "agreement_rate": self.agreement_rate,
            "weeks": [week.as_dict() for week in self.weeks],
        }


def week_start(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def classifier_monitoring(
    *, org: Organization, registered_model: RegisteredModel, since: dt.date | None = None, until: dt.date | None = None
) -> list[VersionMonitoring]:
    """Per version of `registered_model` (newest first), its weeks from `since` to `until`
    (default: the last `DEFAULT_WEEKS` weeks up to today), each week present even when empty."""
    until = until or dt.datetime.now(dt.UTC).date()
    since = since or until - dt.timedelta(weeks=DEFAULT_WEEKS - 1)
    first, last = week_start(since), week_start(until)
    start = dt.datetime.combine(first, dt.time.min, tzinfo=dt.UTC)
    end = dt.datetime.combine(last + dt.timedelta(days=7), dt.time.min, tzinfo=dt.UTC)

    rows: dict[int, dict[dt.date, MonitoringWeek]] = defaultdict(dict)

    def week_of(version: int, when: dt.datetime | dt.date) -> MonitoringWeek:
        day = when.date() if isinstance(when, dt.datetime) else when
        return rows[version].setdefault(day, MonitoringWeek(week=day))

    analyses = (
        Analysis.objects.filter(
            organization=org,
            model_version__registered_model=registered_model,
            job__status=JobStatus.SUCCEEDED,
            completed_at__gte=start,
            completed_at__lt=end,
        )
        .exclude(suggested_label="")
        .annotate(week=TruncWeek("completed_at", tzinfo=dt.UTC))
        .values_list("model_version__number", "week", "suggested_label")
    )
    for number, week, label in analyses:
        row = week_of(number, week)
        row.analyses += 1
        row.suggestions[label] = row.suggestions.get(label, 0) + 1

    # the decision in force per analysis: its latest signed report (an amendment supersedes)
    decisions: dict[int, tuple[int, int, dt.datetime | None, str]] = {}
    signed = (
        Report.objects.filter(
            organization=org,
            status=ReportStatus.SIGNED,
            analysis__model_version__registered_model=registered_model,
        )
        .filter(~Q(ai_decision=AiDecision.NO_AI))
        .values_list("analysis_id", "analysis__model_version__number", "version", "signed_at", "ai_decision")
    )
    for analysis_id, number, report_version, signed_at, decision in signed:
        current = decisions.get(analysis_id)
        if current is None or report_version > current[0]:
            decisions[analysis_id] = (report_version, number, signed_at, decision)
    for _, number, signed_at, decision in decisions.values():
        if signed_at is None or not (start <= signed_at < end):
            continue
        row = week_of(number, week_start(signed_at.astimezone(dt.UTC).date()))
        row.signed += 1
        row.accepted += decision == AiDecision.ACCEPTED

    weeks = []
    day = first
    while day <= last:
        weeks.append(day)
        day += dt.timedelta(days=7)
    versions = sorted(rows, reverse=True)
    return [
        VersionMonitoring(version=number, weeks=[rows[number].get(day) or MonitoringWeek(week=day) for day in weeks])
        for number in versions
    ]

"""Classifier monitoring: weekly suggestion shares and clinicians' agreement, per model version."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from apps.medical.models import Analysis, Patient, Report, Study
from apps.medical.monitoring import classifier_monitoring, week_start
from core.jobs.models import Job
from ml.models import ModelVersion, RegisteredModel

pytestmark = pytest.mark.django_db

KIND = "medical.image_classifier"
MONDAY = dt.date(2026, 11, 2)


def _at(day: dt.date, hour: int = 10) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


@pytest.fixture
def model(org: Any) -> RegisteredModel:
    registered = RegisteredModel.objects.create(organization=org, name="chest", kind=KIND)
    for number in (1, 2):
        ModelVersion.objects.create(
            registered_model=registered,
            number=number,
            kind=KIND,
            artifact_format="torch-state-dict",
            artifact_path=f"x/{number}",
            artifact_sha256="0" * 64,
            source="trained",
        )
    return registered


class Rows:
    def __init__(self, org: Any, model: RegisteredModel) -> None:
        self.org, self.model = org, model
        self.patient = Patient.objects.create(organization=org, patient_id="P1")
        self.count = 0

    def analysis(self, *, version: int, label: str, done: dt.datetime, status: str = "succeeded") -> Analysis:
        self.count += 1
        study = Study.objects.create(
            organization=self.org, patient=self.patient, study_instance_uid=f"1.2.3.{self.count}"
        )
        job = Job.objects.create(organization=self.org, kind="medical.analysis", domain="medical", status=status)
        return Analysis.objects.create(
            organization=self.org,
            study=study,
            job=job,
            model_version=self.model.versions.get(number=version),
            suggested_label=label,
            probability=0.9,
            completed_at=done,
        )

    def report(
        self,
        analysis: Analysis,
        *,
        decision: str,
        signed: dt.datetime | None,
        version: int = 1,
        amends: Report | None = None,
    ) -> Report:
        return Report.objects.create(
            amends=amends,
            organization=self.org,
            study=analysis.study,
            analysis=analysis,
            version=version,
            status="signed" if signed else "draft",
            ai_decision=decision,
            signed_at=signed,
        )


def test_weekly_shares_and_agreement_per_version(org: Any, model: RegisteredModel, other_org: Any) -> None:
    rows = Rows(org, model)
    first = [rows.analysis(version=1, label=label, done=_at(MONDAY)) for label in ("nodule", "nodule", "no finding")]
    rows.analysis(version=1, label="nodule", done=_at(MONDAY), status="failed")  # not counted
    second = rows.analysis(version=2, label="no finding", done=_at(MONDAY + dt.timedelta(days=8)))
    rows.report(first[0], decision="accepted", signed=_at(MONDAY + dt.timedelta(days=1)))
    rows.report(first[1], decision="changed", signed=_at(MONDAY + dt.timedelta(days=2)))
    rows.report(first[2], decision="accepted", signed=None)  # a draft is no decision yet
    rows.report(second, decision="rejected", signed=_at(MONDAY + dt.timedelta(days=9)))
    # another organization's rows never count
    Rows(other_org, RegisteredModel.objects.create(organization=other_org, name="chest", kind=KIND))

    result = classifier_monitoring(org=org, registered_model=model, since=MONDAY, until=MONDAY + dt.timedelta(days=13))

    assert [v.version for v in result] == [2, 1]
    v2, v1 = result
    assert [w.week for w in v1.weeks] == [MONDAY, MONDAY + dt.timedelta(days=7)]
    week = v1.weeks[0]
    assert week.analyses == 3
    assert week.shares == pytest.approx({"no finding": 1 / 3, "nodule": 2 / 3})
    assert (week.signed, week.accepted, week.agreement_rate) == (2, 1, 0.5)
    assert v1.weeks[1].analyses == 0 and v1.weeks[1].agreement_rate is None
    assert v2.weeks[1].analyses == 1 and v2.weeks[1].agreement_rate == 0.0
    assert v1.as_dict()["weeks"][0]["suggestions"] == {"no finding": 1, "nodule": 2}


def test_an_amendment_replaces_the_decision_it_amends(org: Any, model: RegisteredModel) -> None:
    rows = Rows(org, model)
    analysis = rows.analysis(version=1, label="nodule", done=_at(MONDAY))
    first = rows.report(analysis, decision="changed", signed=_at(MONDAY))
    rows.report(analysis, decision="accepted", signed=_at(MONDAY + dt.timedelta(days=1)), version=2, amends=first)

    (v1,) = classifier_monitoring(org=org, registered_model=model, since=MONDAY, until=MONDAY)

    assert (v1.weeks[0].signed, v1.weeks[0].accepted) == (1, 1)


def test_weeks_start_on_monday() -> None:
    assert week_start(dt.date(2026, 11, 8)) == MONDAY  # a Sunday
    assert week_start(MONDAY) == MONDAY


URL = "/api/v1/medical/models/{name}/monitoring/"


def test_api_answers_the_weeks(org: Any, model: RegisteredModel, api_client_for: Any) -> None:
    rows = Rows(org, model)
    analysis = rows.analysis(version=1, label="nodule", done=_at(MONDAY))
    rows.report(analysis, decision="accepted", signed=_at(MONDAY))
    client = api_client_for(org, ("medical",))

    response = client.get(URL.format(name="chest"), {"since": "2026-11-02", "until": "2026-11-08"})

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["model"], body["since"], body["until"]) == ("chest", "2026-11-02", "2026-11-08")
    (version,) = body["versions"]
    assert version["version"] == 1 and version["agreement_rate"] == 1.0
    assert version["weeks"] == [
        {
            "week": "2026-11-02",
            "analyses": 1,
            "suggestions": {"nodule": 1},
            "shares": {"nodule": 1.0},
            "signed_reports": 1,
            "accepted": 1,
            "agreement_rate": 1.0,
        }
    ]


@pytest.mark.parametrize(
    "query",
    [
        {"since": "2026-11-09", "until": "2026-11-02"},
        {"since": "2000-01-01", "until": "2026-11-02"},
        {"since": "yesterday"},
        {"until": "2026-02-30"},
    ],
)
def test_api_refuses_bad_periods(org: Any, model: RegisteredModel, api_client_for: Any, query: dict[str, str]) -> None:
    response = api_client_for(org, ("medical",)).get(URL.format(name="chest"), query)

    assert response.status_code == 400
    assert response.json()["error"]["code"] in {"invalid_period", "invalid"}


def test_api_hides_other_organizations_and_kinds_and_domains(
    org: Any, other_org: Any, model: RegisteredModel, api_client_for: Any
) -> None:
    RegisteredModel.objects.create(organization=org, name="credit", kind="finance.credit_xgboost")

    assert api_client_for(other_org, ("medical",)).get(URL.format(name="chest")).status_code == 404
    assert api_client_for(org, ("medical",)).get(URL.format(name="credit")).status_code == 404
    assert api_client_for(org, ("medical",)).get(URL.format(name="missing")).status_code == 404
    assert api_client_for(org, ("finance",)).get(URL.format(name="chest")).status_code == 403

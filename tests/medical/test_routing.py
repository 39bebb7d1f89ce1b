"""Routing rules (apps/medical/routing.py): their API (CRUD, every bad input, tenancy) and what
they do on receipt: a study that arrives by STOW-RS or the portal upload with a matching series
is analysed once, whatever number of requests it came in, and never because of the analysis'
own output. (C-STORE: tests/medical/test_routing_listener.py.)"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom
import pytest

from apps.medical import routing
from apps.medical.choices import AnalysisTrigger
from apps.medical.models import Analysis, RoutingRule, Study
from core.audit.models import AuditEvent
from core.jobs.choices import JobStatus
from core.tenancy.actors import Actor
from ml.models import RegisteredModel
from tests.conftest import assert_error
from tests.medical.conftest import stow_body, stow_content_type
from tests.medical.diagnosis_fixtures import MODEL_NAME, classifier_version, mednist_files, requires_mednist

pytestmark = [pytest.mark.django_db, requires_mednist]

RULES = "/api/v1/medical/routing-rules/"
STOW = "/api/v1/medical/dicomweb/studies"


def post_json(client: Any, url: str, body: Any) -> Any:
    return client.generic("POST", url, json.dumps(body), content_type="application/json")


def patch_json(client: Any, url: str, body: Any) -> Any:
    return client.generic("PATCH", url, json.dumps(body), content_type="application/json")


@pytest.fixture
def version(org: Any) -> Any:
    return classifier_version(org)


@pytest.fixture
def rule(api: Any, version: Any) -> dict[str, Any]:
    """Chest X-rays (MedNIST's CXR series: modality OT, description "CXR") go to the classifier."""
    response = post_json(
        api,
        RULES,
        {"name": "chest x-rays", "model": MODEL_NAME, "modality": "ot", "series_description_pattern": "^cxr"},
    )
    assert response.status_code == 201, response.content
    return dict(response.json())


def stow(client: Any, files: list[Path]) -> Any:
    response = client.generic("POST", STOW, stow_body(files), content_type=stow_content_type())
    assert response.status_code == 200, response.content
    return response


def study_uid_of(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID)


# --- the API ----------------------------------------------------------------------------------------


def test_a_rule_is_created_listed_read_changed_and_deleted(api: Any, version: Any, rule: dict[str, Any]) -> None:
    # created, with the modality as DICOM writes it
    assert rule["modality"] == "OT"
    assert rule["model"] == MODEL_NAME and rule["alias"] == "production" and rule["active"] is True
    assert rule["url"] == f"http://testserver{RULES}{rule['id']}/"
    # listed and read
    listing = api.get(RULES)
    assert listing.status_code == 200
    assert [row["id"] for row in listing.json()["results"]] == [rule["id"]]
    assert api.get(rule["url"]).json() == rule
    # changed (fields left out keep their value)
    changed = patch_json(api, rule["url"], {"active": False, "body_part": "chest"})
    assert changed.status_code == 200, changed.content
    assert changed.json()["active"] is False and changed.json()["body_part"] == "CHEST"
    assert changed.json()["series_description_pattern"] == "^cxr"
    # deleted
    assert api.delete(rule["url"]).status_code == 204
    assert_error(api.get(rule["url"]), 404)
    actions = list(
        AuditEvent.objects.filter(action__startswith="medical.routing_rule.").values_list("action", flat=True)
    )
    assert sorted(actions) == [
        "medical.routing_rule.create",
        "medical.routing_rule.delete",
        "medical.routing_rule.update",
    ]


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"series_description_pattern": "(unclosed"}, 400, "invalid_pattern", "series_description_pattern"),
        ({"series_description_pattern": "x" * 201}, 400, "invalid", "series_description_pattern"),
        ({"modality": "C/T"}, 400, "invalid", "modality"),
        ({"modality": "X" * 17}, 400, "invalid", "modality"),
        ({"alias": "staging"}, 400, "unknown_alias", "alias"),
        ({"alias": "Not An Alias"}, 400, "unknown_alias", "alias"),
        ({"model": "no-such-model"}, 404, "not_found", None),
        ({"model": "credit-risk"}, 400, "wrong_model_kind", "model"),
        ({"name": ""}, 400, "invalid", "name"),
        ({"active": "maybe"}, 400, "invalid", "active"),
    ],
)
def test_bad_rules_are_refused_and_nothing_is_stored(
    api: Any, org: Any, version: Any, body: dict[str, Any], status: int, code: str, field: str | None
) -> None:
    RegisteredModel.objects.create(organization=org, name="credit-risk", kind="finance.credit_xgboost")
    error = assert_error(post_json(api, RULES, {"name": "rule", "model": MODEL_NAME, **body}), status, code)
    if field is not None:
        assert field in error["fields"], error
    assert not RoutingRule.objects.exists()


@pytest.mark.parametrize("body", ["{oops", "[]", '"text"', "{}", '{"name": "x"}'])
def test_bad_json_is_400(api: Any, version: Any, body: str) -> None:
    assert_error(api.generic("POST", RULES, body, content_type="application/json"), 400)
    assert not RoutingRule.objects.exists()


def test_a_second_rule_of_the_same_name_is_409(api: Any, rule: dict[str, Any]) -> None:
    assert_error(post_json(api, RULES, {"name": rule["name"], "model": MODEL_NAME}), 409, "name_taken")
    other = post_json(api, RULES, {"name": "other", "model": MODEL_NAME}).json()
    assert_error(patch_json(api, other["url"], {"name": rule["name"]}), 409, "name_taken")
    assert RoutingRule.objects.count() == 2


def test_a_bad_change_is_refused_and_changes_nothing(api: Any, rule: dict[str, Any]) -> None:
    assert_error(patch_json(api, rule["url"], {"series_description_pattern": "[", "active": False}), 400)
    assert_error(patch_json(api, rule["url"], {"model": "no-such-model"}), 404)
    assert api.get(rule["url"]).json() == rule


def test_another_organizations_rules_and_models_are_not_found(
    api: Any, other_api: Any, other_org: Any, rule: dict[str, Any]
) -> None:
    assert_error(other_api.get(rule["url"]), 404)
    assert_error(patch_json(other_api, rule["url"], {"active": False}), 404)
    assert_error(other_api.delete(rule["url"]), 404)
    assert other_api.get(RULES).json()["results"] == []
    # acme's model does not exist for globex
    assert_error(post_json(other_api, RULES, {"name": "steal", "model": MODEL_NAME}), 404)
    assert RoutingRule.objects.get().active is True
    assert not RoutingRule.objects.filter(organization=other_org).exists()


def test_rules_are_changed_by_org_admins_and_medical_keys_only(
    client_for: Callable[..., Any], api_client_for: Callable[..., Any], org: Any, rule: dict[str, Any]
) -> None:
    clinician = client_for(org, "clinician")
    assert clinician.get(RULES).status_code == 200  # reading is for every medical role
    body = {"name": "mine", "model": MODEL_NAME}
    assert_error(clinician.post(RULES, json.dumps(body), content_type="application/json"), 403)
    assert_error(clinician.patch(rule["url"], json.dumps({"active": False}), content_type="application/json"), 403)
    assert_error(clinician.delete(rule["url"]), 403)
    finance = api_client_for(org, scopes=("finance",))
    assert_error(finance.get(RULES), 403)
    assert_error(post_json(finance, RULES, body), 403)
    admin = client_for(org, "org_admin")
    assert admin.post(RULES, json.dumps(body), content_type="application/json").status_code == 201


# --- on receipt --------------------------------------------------------------------------------------


def test_a_stowed_study_with_a_matching_series_is_analysed(
    api: Any, rule: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    # given chest X-rays and hands of one study
    files = mednist_files("CXR", count=2) + mednist_files("Hand", count=2)
    # when
    with django_capture_on_commit_callbacks(execute=True):
        stow(api, files)
    # then one analysis, by the rule, of the matching series only, and it succeeded
    analysis = Analysis.objects.select_related("job").get()
    assert analysis.trigger == AnalysisTrigger.ROUTING
    assert analysis.routing_rule_id == rule["id"]
    assert analysis.job.status == JobStatus.SUCCEEDED, analysis.job.error
    analysed = set(analysis.findings.values_list("series__series_description", flat=True))
    assert analysed == {"CXR"}
    # and its own SR and capture, stored into the study, started nothing more
    assert analysis.sr_sop_instance_uid and analysis.saliency_sop_instance_uid
    assert Analysis.objects.count() == 1


def test_a_study_without_a_matching_series_is_not_analysed(
    api: Any, rule: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        stow(api, mednist_files("Hand", count=2))
    assert not Analysis.objects.exists()


def test_an_inactive_rule_does_nothing(api: Any, rule: dict[str, Any]) -> None:
    patch_json(api, rule["url"], {"active": False})
    stow(api, mednist_files("CXR", count=1))
    assert not Analysis.objects.exists()


def test_a_study_sent_in_several_requests_gets_one_pending_analysis(api: Any, rule: dict[str, Any]) -> None:
    # given the first part of a study, whose analysis has not run yet (jobs are sent on commit)
    files = mednist_files("CXR", count=3)
    stow(api, files[:1])
    # when the rest arrives in two more requests
    stow(api, files[1:2])
    stow(api, files[2:])
    # then one analysis waits, and will read the whole study when it runs
    analysis = Analysis.objects.select_related("job").get()
    assert analysis.job.status == JobStatus.QUEUED
    # and the same instances sent again (nothing new) do not analyse again either
    stow(api, files)
    assert Analysis.objects.count() == 1


def test_instances_arriving_while_an_analysis_runs_get_one_follow_up(
    api: Any, rule: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    import datetime as dt

    from django.utils import timezone

    from core.jobs.runner import job_execute

    # given a study whose analysis started (it listed the study's one instance) and still runs
    files = mednist_files("CXR", count=4)
    stow(api, files[:1])
    first = Analysis.objects.select_related("job").get()
    first.job.status = JobStatus.RUNNING
    first.job.started_at = timezone.now() - dt.timedelta(seconds=1)
    first.job.save(update_fields=["status", "started_at"])
    # when more of the study arrives, in two requests, while it runs
    stow(api, files[1:2])
    stow(api, files[2:3])
    # then exactly one follow-up waits (the second receipt finds it queued)
    follow_ups = Analysis.objects.exclude(pk=first.pk).select_related("job")
    assert [a.job.status for a in follow_ups] == [JobStatus.QUEUED]
    assert follow_ups[0].trigger == AnalysisTrigger.ROUTING
    # and when it runs it reads every instance, the late ones included
    job_execute(job_id=follow_ups[0].job_id)
    follow_up = Analysis.objects.get(pk=follow_ups[0].pk)
    assert follow_up.job.status == JobStatus.SUCCEEDED, follow_up.job.error
    assert follow_up.findings.filter(level="instance").count() == 3


def test_a_running_analysis_that_already_read_everything_gets_no_follow_up(api: Any, rule: dict[str, Any]) -> None:
    from django.utils import timezone

    # given a running analysis that started after the study's instances were stored
    files = mednist_files("CXR", count=1)
    stow(api, files)
    analysis = Analysis.objects.select_related("job").get()
    analysis.job.status = JobStatus.RUNNING
    analysis.job.started_at = timezone.now()
    analysis.job.save(update_fields=["status", "started_at"])
    # when the same study is routed again (nothing arrived since it started)
    created = routing.studies_received(actor=Actor.system(analysis.organization), study_ids=[analysis.study_id])
    # then nothing more is queued
    assert created == [] and Analysis.objects.count() == 1


def test_a_finished_analysis_does_not_stop_the_next_receipt_from_analysing(
    api: Any, rule: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    files = mednist_files("CXR", count=2)
    with django_capture_on_commit_callbacks(execute=True):
        stow(api, files[:1])
    with django_capture_on_commit_callbacks(execute=True):
        stow(api, files[1:])
    assert Analysis.objects.count() == 2
    assert set(Analysis.objects.values_list("job__status", flat=True)) == {JobStatus.SUCCEEDED}


def test_the_analysis_own_output_never_matches_a_rule(
    api: Any, org: Any, version: Any, rule: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    # given a study analysed once, holding the analysis' SR (modality SR) and capture (its own series)
    with django_capture_on_commit_callbacks(execute=True):
        stow(api, mednist_files("CXR", count=1))
    study = Study.objects.get()
    # and rules that would match those series
    RoutingRule.objects.all().delete()
    actor = Actor.system(org)
    model = RegisteredModel.objects.get(name=MODEL_NAME)
    routing.routing_rule_create(actor=actor, name="reports", registered_model=model, modality="SR")
    routing.routing_rule_create(
        actor=actor, name="saliency", registered_model=model, series_description_pattern="saliency|AI result"
    )
    # when the study is received again
    created = routing.studies_received(actor=actor, study_ids=[study.pk])
    # then
    assert created == []
    assert Analysis.objects.count() == 1


def test_a_portal_upload_is_routed(
    client_for: Callable[..., Any], org: Any, rule: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    client = client_for(org, "clinician")
    uploads = []
    for path in mednist_files("CXR", count=2):
        buffer = io.BytesIO(path.read_bytes())
        buffer.name = path.name
        uploads.append(buffer)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/portal/medical/upload/", {"uploads": uploads})
    assert response.status_code == 200
    analysis = Analysis.objects.select_related("job").get()
    assert analysis.trigger == AnalysisTrigger.ROUTING
    assert analysis.job.status == JobStatus.SUCCEEDED, analysis.job.error
    assert analysis.findings.filter(level="instance").count() == 2


def test_routing_never_makes_a_store_fail(api: Any, rule: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(**kwargs: Any) -> Any:
        raise RuntimeError("the routing database table is on fire")

    monkeypatch.setattr(routing, "studies_received", broken)
    response = stow(api, mednist_files("CXR", count=1))
    assert response.status_code == 200
    assert Study.objects.count() == 1
    assert not Analysis.objects.exists()


def test_a_rule_whose_alias_went_away_is_skipped(api: Any, org: Any, rule: dict[str, Any]) -> None:
    RoutingRule.objects.filter(pk=rule["id"]).update(alias="gone")
    response = stow(api, mednist_files("CXR", count=1))
    assert response.status_code == 200
    assert not Analysis.objects.exists()


def test_matching_compares_body_part_case_insensitively_and_searches_the_description(
    api: Any, org: Any, version: Any
) -> None:
    from apps.medical.analysis import SeriesCriteria
    from apps.medical.models import Series

    series = Series(modality="CR", body_part_examined="Chest", series_description="PA Chest erect")
    assert SeriesCriteria(modality="CR", body_part="CHEST", series_description_pattern="chest").matches(series)
    assert SeriesCriteria().matches(series)
    assert not SeriesCriteria(modality="DX").matches(series)
    assert not SeriesCriteria(body_part="HAND").matches(series)
    assert not SeriesCriteria(series_description_pattern="^chest").matches(series)

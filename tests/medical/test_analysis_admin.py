"""The back office of analyses and routing rules: staff see their organizations' rows only
(another organization's is a 404); analyses and findings are read-only and opening one is a
PHI access; routing rules are created and changed through the routing services (validated,
audited)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from apps.medical import analysis as analyses
from apps.medical.choices import AccessKind, AnalysisTrigger
from apps.medical.models import Analysis, AnalysisFinding, PhiAccess, RoutingRule, Study
from core.audit.models import AuditEvent
from core.tenancy.actors import Actor
from ml.models import RegisteredModel
from tests.medical.conftest import stow_body, stow_content_type
from tests.medical.diagnosis_fixtures import MODEL_NAME, classifier_version, mednist_files, requires_mednist

pytestmark = [pytest.mark.django_db, requires_mednist]


@pytest.fixture
def staff(org: Any, make_member: Callable[..., Any]) -> Client:
    user = make_member(org, "org_admin", username="staff-acme")
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    user.user_permissions.set(Permission.objects.filter(content_type__app_label__in=["medical", "ml"]))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def analysed(
    api: Any, other_api: Any, org: Any, other_org: Any, django_capture_on_commit_callbacks: Any
) -> dict[str, Analysis]:
    """One finished analysis in each organization (the same MedNIST study stored in both)."""
    result = {}
    for tenant, client in ((org, api), (other_org, other_api)):
        classifier_version(tenant)
        body = stow_body(mednist_files("CXR", count=1))
        assert (
            client.generic(
                "POST", "/api/v1/medical/dicomweb/studies", body, content_type=stow_content_type()
            ).status_code
            == 200
        )
        with django_capture_on_commit_callbacks(execute=True):
            created = analyses.analysis_create(
                actor=Actor.system(tenant),
                study=Study.objects.get(organization=tenant),
                registered_model=RegisteredModel.objects.get(organization=tenant, name=MODEL_NAME),
                trigger=AnalysisTrigger.API,
            )
        result[tenant.slug] = created
    return result


def test_analyses_and_findings_are_read_only_scoped_and_their_views_logged(
    staff: Client, analysed: dict[str, Analysis]
) -> None:
    mine, theirs = analysed["acme"], analysed["globex"]
    listing = staff.get("/admin/medical/analysis/").content.decode()
    assert f"/admin/medical/analysis/{mine.pk}/change/" in listing
    assert f"/admin/medical/analysis/{theirs.pk}/change/" not in listing
    assert staff.get(f"/admin/medical/analysis/{theirs.pk}/change/").status_code == 404
    # viewing one is a PHI access, and nothing can be changed
    before = PhiAccess.objects.filter(kind=AccessKind.ANALYSIS).count()
    page = staff.get(f"/admin/medical/analysis/{mine.pk}/change/")
    assert page.status_code == 200
    assert PhiAccess.objects.filter(kind=AccessKind.ANALYSIS).count() == before + 1
    assert staff.post(f"/admin/medical/analysis/{mine.pk}/change/", {"suggested_label": "Hand"}).status_code == 403
    assert staff.get("/admin/medical/analysis/add/").status_code == 403
    finding = AnalysisFinding.objects.filter(analysis=mine).first()
    other_finding = AnalysisFinding.objects.filter(analysis=theirs).first()
    assert finding is not None and other_finding is not None
    assert staff.get(f"/admin/medical/analysisfinding/{finding.pk}/change/").status_code == 200
    assert staff.get(f"/admin/medical/analysisfinding/{other_finding.pk}/change/").status_code == 404


def test_routing_rules_are_edited_through_the_services(
    staff: Client, org: Any, other_org: Any, analysed: dict[str, Analysis]
) -> None:
    model = RegisteredModel.objects.get(organization=org, name=MODEL_NAME)
    form = {
        "organization": org.pk,
        "name": "chest",
        "modality": "cr",
        "body_part": "",
        "series_description_pattern": "chest",
        "registered_model": model.pk,
        "alias": "production",
        "active": "on",
    }
    # a bad pattern or an unknown alias is shown on the form, and nothing is saved
    assert staff.post("/admin/medical/routingrule/add/", {**form, "series_description_pattern": "("}).status_code == 200
    assert staff.post("/admin/medical/routingrule/add/", {**form, "alias": "staging"}).status_code == 200
    # another organization's model is not offered
    other_model = RegisteredModel.objects.get(organization=other_org, name=MODEL_NAME)
    assert (
        staff.post("/admin/medical/routingrule/add/", {**form, "registered_model": other_model.pk}).status_code == 200
    )
    assert not RoutingRule.objects.exists()
    # a good rule is created by the service (normalised, audited)
    response = staff.post("/admin/medical/routingrule/add/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    rule = RoutingRule.objects.get()
    assert rule.modality == "CR"
    assert AuditEvent.objects.filter(action="medical.routing_rule.create").count() == 1
    # another organization's rule is not found
    theirs = RoutingRule.objects.create(organization=other_org, name="theirs", registered_model=other_model)
    assert staff.get(f"/admin/medical/routingrule/{theirs.pk}/change/").status_code == 404
    # deleting goes through the service
    assert staff.post(f"/admin/medical/routingrule/{rule.pk}/delete/", {"post": "yes"}).status_code == 302
    assert AuditEvent.objects.filter(action="medical.routing_rule.delete").count() == 1

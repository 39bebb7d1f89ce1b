"""The imaging lead's portal forms: training a classifier (CSV of uid,label) with its live
progress page, and the routing rules (list, create, edit, deactivate, delete); bad inputs,
roles and tenancy."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.medical.models import RoutingRule
from ml.models import ModelAlias, ModelVersion, RegisteredModel, TrainingRun
from tests.medical.classifier_fixtures import archive_store

pytestmark = pytest.mark.django_db

KIND = "medical.image_classifier"
TRAIN_URL = "/portal/medical/training-runs/new/"
RULES_URL = "/portal/medical/routing-rules/"


def _classifier(org: Any, name: str = "chest") -> RegisteredModel:
    model = RegisteredModel.objects.create(organization=org, name=name, kind=KIND)
    version = ModelVersion.objects.create(
        registered_model=model,
        number=1,
        kind=KIND,
        artifact_format="torch-state-dict",
        artifact_path="x/1",
        artifact_sha256="ab" * 32,
        source="trained",
        input_schema={"classes": ["no finding", "nodule"], "architecture": "resnet18"},
    )
    ModelAlias.objects.create(registered_model=model, name="production", version=version)
    return model


@pytest.fixture
def chests(org: Any, tmp_path: Any) -> list[tuple[str, str]]:
    """Eight generated chest studies of `org` (four per class) as (study uid, label)."""
    from fixtures.medical_synthetic import synthetic_chests, write

    images = list(synthetic_chests(8, seed=5))
    paths = [write(image, tmp_path) for image in images]
    archive_store(org, paths, tmp_path / "incoming")
    return [(image.study_uid, image.label) for image in images]


def _csv(rows: list[tuple[str, str]], header: str = "uid,label") -> SimpleUploadedFile:
    text = "\n".join([header, *(f"{uid},{label}" for uid, label in rows)]) + "\n"
    return SimpleUploadedFile("labels.csv", text.encode(), content_type="text/csv")


def _train_form(labels: SimpleUploadedFile, **overrides: Any) -> dict[str, Any]:
    return {
        "model": "chest-portal",
        "classes": "no finding, nodule",
        "labels_file": labels,
        "epochs": 1,
        "batch_size": 4,
        "learning_rate": 0.001,
        "input_size": 32,
        "architecture": "resnet18",
        **overrides,
    }


# --- Training -----------------------------------------------------------------------------------


def test_training_form_starts_a_run_and_its_page_shows_progress(client_for: Any, org: Any, chests: Any) -> None:
    # given an org admin on the training form
    admin = client_for(org, "org_admin")
    assert admin.get(TRAIN_URL).status_code == 200
    # when they upload labels for the archive's studies
    response = admin.post(TRAIN_URL, _train_form(_csv(chests), promote="on"))
    # then a run is queued with what the form said, and the browser goes to its progress page
    assert response.status_code == 302, response.content.decode()[:2000]
    run = TrainingRun.objects.get(organization=org)
    assert response["Location"] == f"/portal/medical/training-runs/{run.pk}/"
    assert run.kind == KIND and run.promote
    assert run.data["classes"] == ["no finding", "nodule"]
    assert len(run.data["labels"]) == len(chests)
    assert run.params["epochs"] == 1 and run.params["input_size"] == 32 and run.params["architecture"] == "resnet18"
    page = admin.get(response["Location"])
    html = page.content.decode()
    assert page.status_code == 200
    assert "data-job-progress" in html and f'data-job-url="/api/v1/jobs/{run.job_id}/"' in html
    assert 'data-testid="live-metrics"' in html
    # and the model list links to it
    assert f"/portal/medical/training-runs/{run.pk}/" in admin.get("/portal/medical/models/").content.decode()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"epochs": 0}, "epochs"),
        ({"input_size": 8}, "input_size"),
        ({"learning_rate": 2}, "learning_rate"),
        ({"architecture": "vgg"}, "architecture"),
        ({"model": ""}, "model"),
    ],
)
def test_training_form_bad_fields_show_errors_and_store_nothing(
    client_for: Any, org: Any, chests: Any, overrides: dict[str, Any], field: str
) -> None:
    admin = client_for(org, "org_admin")
    response = admin.post(TRAIN_URL, _train_form(_csv(chests), **overrides))
    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert not TrainingRun.objects.exists() and not RegisteredModel.objects.exists()


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (SimpleUploadedFile("l.csv", b"study,diagnosis\n1.2.3,nodule\n"), "header"),
        (SimpleUploadedFile("l.csv", b"\xff\xfe\x00garbage"), "UTF-8"),
        (None, "unknown"),  # UIDs that are not in the archive
        ("outside", "not one of the classes"),
    ],
)
def test_training_form_bad_labels_show_the_services_errors(
    client_for: Any, org: Any, chests: Any, labels: Any, message: str
) -> None:
    admin = client_for(org, "org_admin")
    if labels is None:
        labels = _csv([("1.2.826.0.1.3680043.8.498.1", "nodule"), ("1.2.826.0.1.3680043.8.498.2", "no finding")])
    elif labels == "outside":
        labels = _csv([(uid, "pneumonia") for uid, _ in chests])
    response = admin.post(TRAIN_URL, _train_form(labels))
    assert response.status_code == 200
    assert message.lower() in response.content.decode().lower()
    assert not TrainingRun.objects.exists() and not RegisteredModel.objects.exists()


def test_only_org_admins_may_train_and_other_domains_may_not_look(client_for: Any, org: Any, chests: Any) -> None:
    clinician = client_for(org, "clinician")
    page = clinician.get(TRAIN_URL)
    assert page.status_code == 200 and b'data-testid="train-forbidden"' in page.content
    response = clinician.post(TRAIN_URL, _train_form(_csv(chests)))
    assert response.status_code == 200 and "admin" in response.content.decode().lower()
    assert not TrainingRun.objects.exists()
    assert client_for(org, "credit_analyst").get(TRAIN_URL).status_code in {302, 403}


def test_training_run_page_is_the_organizations(client_for: Any, org: Any, other_org: Any, chests: Any) -> None:
    admin = client_for(org, "org_admin")
    admin.post(TRAIN_URL, _train_form(_csv(chests)))
    run = TrainingRun.objects.get(organization=org)
    assert client_for(other_org, "org_admin").get(f"/portal/medical/training-runs/{run.pk}/").status_code == 404
    assert admin.get("/portal/medical/training-runs/999999/").status_code == 404
    # another domain's run of this organization is not a medical page either
    run.kind = "finance.credit_xgboost"
    run.save(update_fields=["kind"])
    assert admin.get(f"/portal/medical/training-runs/{run.pk}/").status_code == 404


# --- Routing rules ------------------------------------------------------------------------------


def _rule_form(model: RegisteredModel, **overrides: Any) -> dict[str, Any]:
    return {
        "name": "Chest radiographs",
        "modality": "CR",
        "body_part": "CHEST",
        "series_description_pattern": "^PA",
        "registered_model": model.pk,
        "alias": "production",
        "active": "on",
        **overrides,
    }


def test_routing_rules_create_list_edit_deactivate_delete(client_for: Any, org: Any) -> None:
    model = _classifier(org)
    admin = client_for(org, "org_admin")
    # create
    response = admin.post(RULES_URL, _rule_form(model))
    assert response.status_code == 302, response.content.decode()[:2000]
    rule = RoutingRule.objects.get(organization=org)
    assert (rule.modality, rule.body_part, rule.series_description_pattern, rule.alias, rule.active) == (
        "CR",
        "CHEST",
        "^PA",
        "production",
        True,
    )
    assert rule.registered_model == model
    # list
    listing = admin.get(RULES_URL).content.decode()
    assert f'data-testid="routing-rule-{rule.pk}"' in listing and "^PA" in listing
    # edit: deactivate (an unticked checkbox is absent from the POST)
    edit_url = f"/portal/medical/routing-rules/{rule.pk}/"
    assert admin.get(edit_url).status_code == 200
    form = _rule_form(model, modality="DX")
    del form["active"]
    assert admin.post(edit_url, form).status_code == 302
    rule.refresh_from_db()
    assert rule.modality == "DX" and rule.active is False
    # delete
    assert admin.post(f"{edit_url}delete/").status_code == 302
    assert not RoutingRule.objects.exists()
    from core.audit.models import AuditEvent

    actions = set(AuditEvent.objects.filter(organization=org).values_list("action", flat=True))
    assert {"medical.routing_rule.create", "medical.routing_rule.update", "medical.routing_rule.delete"} <= actions


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"series_description_pattern": "(unclosed"}, "series_description_pattern"),
        ({"modality": "cr!"}, "modality"),
        ({"alias": "no-such-alias"}, "alias"),
        ({"name": ""}, "name"),
    ],
)
def test_routing_rule_bad_inputs_show_errors_and_store_nothing(
    client_for: Any, org: Any, overrides: dict[str, Any], field: str
) -> None:
    model = _classifier(org)
    response = client_for(org, "org_admin").post(RULES_URL, _rule_form(model, **overrides))
    assert response.status_code == 200
    assert field in response.context["form"].errors, response.context["form"].errors
    assert not RoutingRule.objects.exists()


def test_routing_rule_name_taken_and_bad_edit_leave_the_rule_as_it_was(client_for: Any, org: Any) -> None:
    model = _classifier(org)
    admin = client_for(org, "org_admin")
    admin.post(RULES_URL, _rule_form(model))
    admin.post(RULES_URL, _rule_form(model, name="Second"))
    response = admin.post(RULES_URL, _rule_form(model))
    assert response.status_code == 200 and "already exists" in response.content.decode()
    assert RoutingRule.objects.count() == 2
    rule = RoutingRule.objects.get(name="Second")
    response = admin.post(f"/portal/medical/routing-rules/{rule.pk}/", _rule_form(model, name="Second", alias="x y"))
    assert response.status_code == 200 and "alias" in response.context["form"].errors
    rule.refresh_from_db()
    assert rule.alias == "production"


def test_routing_rule_model_choices_and_ids_are_the_organizations(client_for: Any, org: Any, other_org: Any) -> None:
    model = _classifier(org)
    theirs = _classifier(other_org, name="their-chest")
    RegisteredModel.objects.create(organization=org, name="credit", kind="finance.credit_xgboost")
    admin = client_for(org, "org_admin")
    # another organization's model (or another kind) is not a choice
    for foreign in (theirs, RegisteredModel.objects.get(name="credit")):
        response = admin.post(RULES_URL, _rule_form(model, registered_model=foreign.pk))
        assert response.status_code == 200 and "registered_model" in response.context["form"].errors
    assert "their-chest" not in admin.get(RULES_URL).content.decode()
    # another organization's rule is a 404 on view, edit and delete
    admin.post(RULES_URL, _rule_form(model))
    rule = RoutingRule.objects.get(organization=org)
    other_admin = client_for(other_org, "org_admin")
    url = f"/portal/medical/routing-rules/{rule.pk}/"
    assert other_admin.get(url).status_code == 404
    assert other_admin.post(url, _rule_form(theirs)).status_code == 404
    assert other_admin.post(f"{url}delete/").status_code == 404
    assert rule.name not in other_admin.get(RULES_URL).content.decode()
    assert RoutingRule.objects.filter(pk=rule.pk, name="Chest radiographs").exists()


def test_clinicians_see_rules_but_only_admins_change_them(client_for: Any, org: Any) -> None:
    model = _classifier(org)
    client_for(org, "org_admin").post(RULES_URL, _rule_form(model))
    rule = RoutingRule.objects.get()
    clinician = client_for(org, "clinician")
    page = clinician.get(RULES_URL)
    assert page.status_code == 200 and "Chest radiographs" in page.content.decode()
    assert 'data-testid="routing-rule-form"' not in page.content.decode()
    response = clinician.post(RULES_URL, _rule_form(model, name="Mine"))
    assert response.status_code == 200 and "admin" in response.content.decode().lower()
    clinician.post(f"/portal/medical/routing-rules/{rule.pk}/", _rule_form(model, modality="CT"))
    clinician.post(f"/portal/medical/routing-rules/{rule.pk}/delete/")
    rule.refresh_from_db()
    assert rule.modality == "CR" and RoutingRule.objects.count() == 1
    assert client_for(org, "credit_analyst").get(RULES_URL).status_code in {302, 403}

"""Org-admin model registry pages: list, model, version, promote and roll back by alias."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse

from core.tenancy.choices import Role

pytestmark = pytest.mark.django_db

PORTAL_TINY_KIND = "tests.portal_tiny"


# The portal pages need a kind whose versions take any metrics; tests/ml/conftest.py's
# `tiny_kind` is a trained torch model, so this module keeps its own threshold kind.


@pytest.fixture
def portal_tiny_kind() -> Iterator[str]:
    """A minimal real ModelKind: a threshold classifier stored as JSON."""
    from ml.kinds import ModelKind, Trained, register_kind, unregister_kind

    class TinyThreshold(ModelKind):
        name = PORTAL_TINY_KIND
        artifact_format = "json"

        def save(self, trained: Trained, directory: Path) -> None:
            (directory / "model.json").write_text(json.dumps(trained.model))

        def load(self, directory: Path, *, device: str, half: bool = False) -> Any:
            return json.loads((directory / "model.json").read_text())

        def predict(self, loaded: Any, inputs: Sequence[Any], **options: Any) -> list[Any]:
            return [int(x >= loaded["threshold"]) for x in inputs]

    register_kind(TinyThreshold())
    yield PORTAL_TINY_KIND
    unregister_kind(PORTAL_TINY_KIND)


@pytest.fixture
def make_model_version(portal_tiny_kind: str, tmp_path: Path) -> Callable[..., Any]:
    """`make_model_version(org, name, threshold, metrics)` → a new stored version of model `name`."""
    from core.tenancy.actors import Actor
    from ml.choices import VersionSource
    from ml.kinds import Trained, get_kind
    from ml.services import model_version_create, registered_model_ensure

    def make(org: Any, name: str = "tiny", threshold: float = 0.5, metrics: dict[str, Any] | None = None) -> Any:
        actor = Actor.system(org)
        model = registered_model_ensure(actor=actor, name=name, kind=portal_tiny_kind)
        directory = Path(tempfile.mkdtemp(dir=tmp_path))
        get_kind(portal_tiny_kind).save(Trained(model={"threshold": threshold}), directory)
        return model_version_create(
            actor=actor,
            registered_model=model,
            directory=directory,
            source=VersionSource.TRAINED,
            metrics=metrics or {"accuracy": 0.9},
            params={"threshold": threshold},
        )

    return make


def production_number(org, name="tiny") -> int:
    from ml.selectors import model_version_get_by_alias

    return model_version_get_by_alias(org=org, name=name).number


def test_list_shows_models_versions_aliases_and_metrics(admin_client_acme, org, make_model_version):
    make_model_version(org, threshold=0.5, metrics={"accuracy": 0.812345})
    make_model_version(org, threshold=0.6)
    response = admin_client_acme.get("/models/")
    content = response.content.decode()
    assert "tiny" in content and "tests.portal_tiny" in content
    assert "production → " in content
    assert "0.8123" in content  # production (v1) metrics, 4 significant digits


def test_model_page_charts_headline_metrics_per_version(admin_client_acme, org, make_model_version):
    # given: one version, then a second with a better accuracy
    make_model_version(org, metrics={"accuracy": 0.81, "loss": 0.5})
    assert 'data-testid="metrics-chart"' not in admin_client_acme.get("/models/tiny/").content.decode()
    make_model_version(org, metrics={"accuracy": 0.93, "loss": 0.25})
    # when
    content = admin_client_acme.get("/models/tiny/").content.decode()
    # then: a chart with a line per metric and a point per version
    assert 'data-testid="metrics-chart"><svg' in content and 'aria-label="Metrics per version"' in content
    assert "v1 accuracy: 0.81" in content and "v2 accuracy: 0.93" in content and "v2 loss: 0.25" in content


def test_version_page_shows_metrics_and_manifest(admin_client_acme, org, make_model_version):
    version = make_model_version(org, metrics={"accuracy": 0.9, "auc": 0.95})
    response = admin_client_acme.get("/models/tiny/versions/1/")
    assert response.status_code == 200
    content = response.content.decode()
    assert "auc" in content and "0.95" in content
    assert "model.json" in content and version.artifact_sha256 in content


def test_promote_then_roll_back(admin_client_acme, org, make_model_version):
    # given: v1 is production (first version), v2 is a challenger
    make_model_version(org, threshold=0.5)
    make_model_version(org, threshold=0.6)
    assert production_number(org) == 1
    # when: promote v2
    response = admin_client_acme.post(
        "/models/tiny/aliases/", {"alias": "production", "version": "2", "reason": "better recall"}, follow=True
    )
    # then
    assert production_number(org) == 2
    content = response.content.decode()
    assert "tiny@production now points at v2" in content
    assert "better recall" in content  # alias history
    # when: roll back
    admin_client_acme.post("/models/tiny/aliases/", {"alias": "production", "version": "1", "reason": "incident 42"})
    # then
    assert production_number(org) == 1
    from ml.models import ModelAliasEvent

    reasons = list(ModelAliasEvent.objects.filter(alias="production").values_list("reason", flat=True))
    assert reasons[:2] == ["incident 42", "better recall"]
    from core.audit.models import AuditEvent

    assert AuditEvent.objects.filter(organization=org, action="ml.alias.set").count() == 3


def test_promote_needs_a_reason_and_an_existing_version(admin_client_acme, org, make_model_version):
    make_model_version(org)
    response = admin_client_acme.post("/models/tiny/aliases/", {"alias": "production", "version": "1", "reason": ""})
    assert response.status_code == 400
    assert response.context["form"].errors["reason"]
    response = admin_client_acme.post("/models/tiny/aliases/", {"alias": "production", "version": "7", "reason": "x"})
    assert response.status_code == 400
    assert response.context["form"].errors["version"]
    response = admin_client_acme.post("/models/tiny/aliases/", {"alias": "Bad Alias", "version": "1", "reason": "x"})
    assert response.status_code == 400
    assert response.context["form"].errors["alias"]


def test_staging_alias_can_be_set(admin_client_acme, org, make_model_version):
    make_model_version(org)
    make_model_version(org)
    admin_client_acme.post("/models/tiny/aliases/", {"alias": "staging", "version": "2", "reason": "challenger"})
    from ml.selectors import model_version_get_by_alias

    assert model_version_get_by_alias(org=org, name="tiny", alias="staging").number == 2
    assert production_number(org) == 1


def test_another_orgs_model_is_404(admin_client_acme, other_org, make_model_version):
    make_model_version(other_org, name="secret-model")
    assert admin_client_acme.get("/models/secret-model/").status_code == 404
    assert admin_client_acme.get("/models/secret-model/versions/1/").status_code == 404
    response = admin_client_acme.post(
        "/models/secret-model/aliases/", {"alias": "production", "version": "1", "reason": "x"}
    )
    assert response.status_code == 404
    assert "secret-model" not in admin_client_acme.get("/models/").content.decode()


def test_non_admins_cannot_promote(client_for, org, make_model_version):
    make_model_version(org)
    make_model_version(org)
    client = client_for(org, Role.CREDIT_ANALYST)
    response = client.post("/models/tiny/aliases/", {"alias": "production", "version": "2", "reason": "x"})
    assert response.status_code == 403
    assert production_number(org) == 1


def test_url_names_live_in_the_ml_namespace_at_the_same_paths():
    assert reverse("ml:model-list") == "/models/"
    assert reverse("ml:model-detail", args=["tiny"]) == "/models/tiny/"
    assert reverse("ml:model-version", args=["tiny", 3]) == "/models/tiny/versions/3/"
    assert reverse("ml:model-alias-set", args=["tiny"]) == "/models/tiny/aliases/"


@pytest.mark.parametrize("role", [r for r in Role.values if r != Role.ORG_ADMIN])
def test_models_nav_entry_is_for_org_admins_only_after_the_domains(client_for, org, role):
    # when
    admin_nav = [item.key for item in client_for(org, Role.ORG_ADMIN).get("/").context["portal_nav"]]
    other_nav = [item.key for item in client_for(org, role).get("/").context["portal_nav"]]
    # then: Models sits between the last domain and API keys, and only admins have it
    from core.apps import domain_app_configs

    domains = [config.domain for config in domain_app_configs() if config.nav_label and config.portal_urls]
    assert admin_nav == ["dashboard", *domains, "models", "api-keys", "audit"]
    assert "models" not in other_nav

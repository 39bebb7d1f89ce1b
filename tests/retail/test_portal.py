"""The merchant portal through Django's test client: every page renders; another org's rows are 404."""

from __future__ import annotations

import pytest

from ml.models import TrainingRun

pytestmark = pytest.mark.django_db(transaction=True)


def _pages(trained):
    customer = trained["events"][0]["customer"]
    item = trained["events"][0]["item"]
    return [
        "/portal/retail/",
        "/portal/retail/events/",
        "/portal/retail/items/",
        "/portal/retail/items/?q=a",
        f"/portal/retail/items/{item}/",
        "/portal/retail/customers/",
        "/portal/retail/customers/?q=u1",
        f"/portal/retail/customers/{customer}/",
        f"/portal/retail/training-runs/{trained['run']['id']}/",
        "/portal/retail/models/recommendations/",
        "/portal/retail/models/recommendations/v1/",
    ]


@pytest.mark.parametrize("role", ["merchant", "org_admin"])
def test_pages_render(client_for, org, trained, role):
    client = client_for(org, role)
    for url in _pages(trained):
        response = client.get(url)
        assert response.status_code == 200, (url, response.content[:300])


def test_customer_page_shows_reasons_and_model_chart(client_for, org, trained):
    client = client_for(org, "merchant")
    customer = trained["events"][0]["customer"]
    body = client.get(f"/portal/retail/customers/{customer}/").content.decode()
    assert "Because you" in body
    assert 'data-testid="source-badge"' in body
    model = client.get("/portal/retail/models/recommendations/").content.decode()
    assert "<svg" in model
    assert "popularity" in model.lower()


def test_other_roles_are_forbidden(client_for, org, shop):
    client = client_for(org, "credit_analyst")
    for url in ("/portal/retail/", "/portal/retail/items/", "/portal/retail/customers/", "/portal/retail/events/"):
        assert client.get(url).status_code == 403, url


def test_other_organization_is_404(client_for, other_org, trained):
    client = client_for(other_org, "merchant")
    customer = trained["events"][0]["customer"]
    item = trained["events"][0]["item"]
    for url in (
        f"/portal/retail/customers/{customer}/",
        f"/portal/retail/items/{item}/",
        "/portal/retail/models/recommendations/",
        f"/portal/retail/training-runs/{trained['run']['id']}/",
    ):
        assert client.get(url).status_code == 404, url
    assert client.get("/portal/retail/customers/nobody/").status_code == 404


def test_training_form_enqueues_a_run(client_for, org, shop):
    client = client_for(org, "org_admin")
    response = client.post("/portal/retail/", {"algorithm": "popularity", "promote": "on"})
    assert response.status_code == 302, response.content[:500]
    run = TrainingRun.objects.get(registered_model__organization=org)
    assert response["Location"] == f"/portal/retail/training-runs/{run.pk}/"
    page = client.get(response["Location"])
    assert page.status_code == 200

"""A client generated from the schema by openapi-python-client works against a live server.

`openapi-python-client generate` runs offline on the schema the server serves (post hooks off:
no formatter needed); the generated package is imported and, as an org admin, lists and creates
through every domain: the registry (models), finance (a score with a trained model), traffic
(create and list cameras), jobs (list), and retail's whole flow (catalogue, events, training,
recommendations, similar items, a batch, an A/B split).
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from rest_framework.test import APIClient

from fixtures.finance_synthetic import generate_credit_applications
from tests.api.conftest import seed_org
from tests.finance.conftest import applicant

pytestmark = pytest.mark.django_db(transaction=True)  # live_server; jobs run on commit, inline

GENERATOR = Path(sys.executable).parent / "openapi-python-client"
PACKAGE = "tessera_client"


@pytest.fixture
def generated_client(tmp_path: Path, client: Any) -> Iterator[ModuleType]:
    """The generated package, importable for the test's duration."""
    schema = tmp_path / "openapi.json"
    schema.write_text(json.dumps(client.get("/api/schema/", {"format": "json"}).json()))
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps({"package_name_override": PACKAGE, "project_name_override": "tessera-client", "post_hooks": []})
    )
    output = tmp_path / "generated"
    result = subprocess.run(
        [str(GENERATOR), "generate", "--path", str(schema), "--config", str(config), "--output-path", str(output)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    package_dir = next(output.rglob("client.py")).parent
    assert package_dir.name == PACKAGE
    sys.path.insert(0, str(package_dir.parent))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(package_dir.parent))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def operation(name: str) -> ModuleType:
    """A generated operation module, e.g. `traffic.traffic_cameras_create`."""
    return importlib.import_module(f"{PACKAGE}.api.{name}")


def test_the_generated_client_lists_reads_and_creates_in_every_domain(
    generated_client: ModuleType, live_server: Any, org: Any, make_api_key: Callable[..., str]
) -> None:
    # given: an org admin's key and a trained credit model (jobs run inline: transactional db)
    raw_key = make_api_key(org)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    seed_org(api, org, raw_key)
    models = importlib.import_module(f"{PACKAGE}.models")
    client = generated_client.AuthenticatedClient(
        base_url=live_server.url, token=raw_key, raise_on_unexpected_status=True
    )

    # when: ml — list the registry's models
    registry = operation("ml.ml_models_list").sync(client=client)
    # then
    assert [model.name for model in registry.results] == ["credit-risk"]
    assert registry.results[0].versions[0].number == 1

    # when: finance — score an application
    score_body = models.FinanceScoreInputRequest.from_dict(
        {"application_id": "gen-1", "features": applicant(generate_credit_applications(3, seed=5))}
    )
    score = operation("finance.finance_scores_create").sync(client=client, body=score_body)
    # then
    assert isinstance(score, models.ScoreOutput), score
    assert score.application_id == "gen-1"
    assert score.decision in {"approve", "review", "decline"}
    decision = operation("finance.finance_decisions_retrieve").sync(str(score.decision_id), client=client)
    assert isinstance(decision, models.DecisionOutput), decision
    assert decision.score == score.score

    # when: traffic — create a camera, then list cameras
    camera_body = models.CameraInputRequest.from_dict({"name": "Gate 4", "location": "North entrance"})
    camera = operation("traffic.traffic_cameras_create").sync(client=client, body=camera_body)
    cameras = operation("traffic.traffic_cameras_list").sync(client=client)
    # then
    assert isinstance(camera, models.CameraOutput), camera
    assert [(c.id, c.name) for c in cameras.results] == [(camera.id, "Gate 4")]

    # when: a conflict comes back as the typed error shape
    again = operation("traffic.traffic_cameras_create").sync(client=client, body=camera_body)
    # then
    assert isinstance(again, models.Error), again
    assert again.error.code == "conflict"

    # when: jobs — list (the training job ran)
    jobs = operation("jobs.jobs_list").sync(client=client)
    # then
    assert jobs.count >= 1
    assert {job.status for job in jobs.results} == {"succeeded"}


def test_the_generated_client_runs_the_retail_flow(
    generated_client: ModuleType, live_server: Any, org: Any, make_api_key: Callable[..., str]
) -> None:
    """Catalogue, events, training, recommendations, similar items, a batch and an A/B split."""
    from tests.retail.conftest import FAST_ALS, movielens_subset

    models = importlib.import_module(f"{PACKAGE}.models")
    client = generated_client.AuthenticatedClient(
        base_url=live_server.url, token=make_api_key(org), raise_on_unexpected_status=True
    )
    films, ratings = movielens_subset(60)

    # when: the catalogue and the history go in through the typed bodies
    items = [models.RetailItemUpsertRequest.from_dict(row) for row in films]
    stored = operation("retail.retail_items_update").sync(client=client, body=items)
    events = [models.RetailEventInRequest.from_dict(row) for row in ratings]
    ingested = operation("retail.retail_events_create").sync(client=client, body=events)
    again = operation("retail.retail_events_create").sync(client=client, body=events[:10])
    # then: every field arrived (categories and titles included) and a retry stores nothing
    assert (stored.created, stored.refused) == (len(films), 0)
    assert (ingested.created, ingested.refused, again.duplicates) == (len(ratings), 0, 10)
    first = operation("retail.retail_items_retrieve").sync(films[0]["id"], client=client)
    assert (first.title, first.categories) == (films[0]["title"], films[0]["categories"])

    # when: training (inline here), then the shop's calls
    body = models.RetailTrainingRunListInputRequest.from_dict({"algorithm": "als", "params": FAST_ALS})
    run = operation("retail.retail_training_runs_create").sync(client=client, body=body)
    answer = operation("retail.retail_customers_recommendations_retrieve").sync("u1", client=client, n=5)
    similar = operation("retail.retail_items_similar_retrieve").sync(films[0]["id"], client=client, n=3)
    batch_body = models.RetailRecommendationBatchInputRequest.from_dict({"customers": ["u1", "u2"], "n": 3})
    batch = operation("retail.retail_recommendations_batch_create").sync(client=client, body=batch_body)
    # then
    assert run.model == "recommendations"
    assert [item.source for item in answer.items] == ["model"] * 5
    assert len(similar.items) == 3 and films[0]["id"] not in {item.id for item in similar.items}
    assert sorted(batch.results.additional_properties) == ["u1", "u2"]

    # when: an A/B split between production and a staging alias
    alias = models.RetailModelAliasInputRequest.from_dict({"alias": "staging", "version": 1, "reason": "challenger"})
    operation("retail.retail_models_aliases_update").sync("recommendations", client=client, body=alias)
    split = operation("retail.retail_models_traffic_split_update").sync(
        "recommendations",
        client=client,
        body=models.RetailModelsTrafficSplitUpdateBody.from_dict({"production": 90, "staging": 10}),
    )
    report = operation("retail.retail_models_online_report_retrieve").sync("recommendations", client=client)
    # then
    assert split.weights.additional_properties == {"production": 90, "staging": 10}
    assert report.additional_properties["model"] == "recommendations"

"""Traffic reaches its models only through `ml.runtime`, and serving processes start warm."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.conftest import assert_error
from tests.traffic.conftest import jpeg_upload

APPS = Path(__file__).resolve().parents[2] / "apps"


# The traffic app's modules; finance's are moved onto the runtime on their own branch, after which
# this can cover every app (`APPS.rglob`).
@pytest.mark.parametrize("app", ["traffic"])
def test_no_domain_code_holds_a_loaded_model(app: str) -> None:
    # given every module of the app
    offenders = [
        f"{path.relative_to(APPS.parent)}:{number}"
        for path in sorted((APPS / app).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if "load_version" in line or ".kind.track(" in line
    ]

    # then none loads a version itself: predictions and streams go through ml.runtime
    assert offenders == []


def test_the_detector_kind_is_typed_without_ignores() -> None:
    source = (APPS / "traffic" / "ml.py").read_text()
    assert "type: ignore" not in source
    from apps.traffic.ml import YOLO_DETECTOR

    assert YOLO_DETECTOR.supports("stream") and YOLO_DETECTOR.supports("warm_up")
    assert YOLO_DETECTOR.supports_half is True


def _join_warm_up_threads() -> None:
    from ml.signals import WARM_UP_THREAD_NAME

    for thread in threading.enumerate():
        if thread.name == WARM_UP_THREAD_NAME:
            thread.join(timeout=120)


@pytest.mark.django_db(transaction=True)
def test_a_gunicorn_worker_warms_the_production_detector_before_its_first_request(api: Any, detector: Any) -> None:
    # given a production detector that no process has loaded yet
    from ml import runtime
    from scripts.gunicorn_conf import post_worker_init

    runtime.cache_clear()
    assert runtime.cache_info()["versions"] == []

    # when a gunicorn worker has loaded the application
    worker = SimpleNamespace()
    post_worker_init(worker)
    worker.ml_warm_up.join(timeout=120)

    # then the production version is loaded, and the first detection is served from the cache
    assert runtime.cache_info()["versions"] == [detector.pk]
    loads = runtime.cache_info()["loads"]
    response = api.post("/api/v1/traffic/detections/", {"image": jpeg_upload(), "conf": 0.001}, format="multipart")
    assert response.status_code == 201, response.content
    assert runtime.cache_info()["loads"] == loads


@pytest.mark.django_db(transaction=True)
def test_a_celery_pool_process_warms_the_production_detector(detector: Any, settings: Any) -> None:
    from celery.signals import worker_process_init

    import ml.signals  # noqa: F401  (connected when the ml app loads, as in any `celery -A core worker`)
    from ml import runtime

    runtime.cache_clear()
    # when a pool process starts
    worker_process_init.send(sender=None)
    _join_warm_up_threads()

    # then it holds the production version
    assert runtime.cache_info()["versions"] == [detector.pk]

    # and with ML_WARM_UP=off it loads nothing
    runtime.cache_clear()
    settings.ML_WARM_UP = "off"
    worker_process_init.send(sender=None)
    _join_warm_up_threads()
    assert runtime.cache_info()["versions"] == []


def test_a_model_of_another_domain_is_not_found_everywhere(api: Any, org: Any, detector: Any) -> None:
    # given a finance model in the same organization
    from core.tenancy.actors import Actor
    from ml.services import registered_model_ensure

    registered_model_ensure(actor=Actor.system(org), name="credit-risk", kind="finance.credit_xgboost")

    # then traffic answers 404 for it wherever a model is named (it was a 400 before)
    detect = api.post(
        "/api/v1/traffic/detections/", {"image": jpeg_upload(), "model": "credit-risk"}, format="multipart"
    )
    assert_error(detect, 404)
    assert_error(api.get("/api/v1/traffic/models/credit-risk/class-map/"), 404)
    assert_error(api.put("/api/v1/traffic/models/credit-risk/class-map/", {"mapping": {}}, format="json"), 404)
    from apps.traffic.models import DetectionRun

    assert DetectionRun.objects.count() == 0

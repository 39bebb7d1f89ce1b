"""`seed_demo`'s diagnosis half: a classifier trained on generated radiographs through the real
training job, a routing rule, new studies analysed on receipt (SR and saliency in each study),
one report signed by the demo clinician; idempotent."""

from __future__ import annotations

import io
from typing import Any

import pydicom
import pytest
from django.apps import apps
from django.core.files.storage import default_storage

from apps.medical.diagnosis_demo import DEMO_MODEL, DEMO_RULE, NEW_STUDIES, SIGNED_STUDIES, TRAINING_PATIENTS
from apps.medical.models import Analysis, Instance, Report, RoutingRule
from core.apps import DomainAppConfig
from ml.models import ModelAlias, ModelVersion

pytestmark = pytest.mark.django_db


def _seed(org: Any) -> str:
    out = io.StringIO()
    config = apps.get_app_config("medical")
    assert isinstance(config, DomainAppConfig)
    config.seed_demo(org=org, stdout=out)
    return out.getvalue()


def _new_studies() -> list[Any]:
    import datetime as dt

    from fixtures.medical_synthetic import synthetic_chests

    today = dt.datetime.now(dt.UTC).date()
    return list(synthetic_chests(NEW_STUDIES, seed=1, first_number=TRAINING_PATIENTS + 1, end_date=today))


def _saliency_hits(version: Any) -> tuple[float, float, int]:
    """(hit rate, chance rate, positives) of the demo model's Grad-CAM peak on unseen generated
    positives: a hit is a peak (at the source image's size, as the analysis draws it) within the
    nodule's radius plus one cell of the finest recorded Grad-CAM layer's map; chance is the share of
    the image such a disc covers (where a peak placed at random would land as often)."""
    import numpy as np
    import torch

    from apps.medical import saliency
    from apps.medical.imaging import dataset_inputs
    from fixtures.medical_synthetic import SIZE, synthetic_chests
    from ml.runtime import explain, load_version

    loaded = load_version(version).model
    size = loaded.preprocessing.input_size
    seen: dict[str, Any] = {}
    finest = loaded.gradcam_layer.split("+")[0]  # the maps are combined at this layer's resolution
    hook = dict(loaded.network.named_modules())[finest].register_forward_hook(
        lambda _m, _i, output: seen.update(shape=tuple(output.shape))
    )
    with torch.inference_mode():
        loaded.network(torch.zeros(1, 1, size, size, device=loaded.device))
    hook.remove()
    cell = SIZE / seen["shape"][-1]
    # unseen: another seed than the training studies, past the demo's four new ones
    positives = [image for image in synthetic_chests(40, seed=2, first_number=500) if image.nodule is not None]
    inputs = [dataset_inputs(image.dataset, loaded.preprocessing)[0] for image in positives]
    heatmaps = explain(version, inputs, classes=[1] * len(inputs)).outputs
    hits, chance = [], []
    for image, heat in zip(positives, heatmaps, strict=True):
        assert image.nodule is not None
        full = saliency.heatmap_resize(np.asarray(heat, dtype=np.float32), SIZE, SIZE)
        row, column = np.unravel_index(int(full.argmax()), full.shape)
        reach = image.nodule.radius + cell
        hits.append(bool(np.hypot(row - image.nodule.row, column - image.nodule.column) <= reach))
        chance.append(min(1.0, float(np.pi * reach**2 / SIZE**2)))
    return float(np.mean(hits)), float(np.mean(chance)), len(positives)


def test_the_demo_trains_routes_analyses_and_signs_once(org: Any, make_member: Any, client_for: Any) -> None:
    clinician = make_member(org, "clinician", username="demo-clinician")

    output = _seed(org)

    # a classifier trained on the generated radiographs, in production, that learnt the task
    version = ModelVersion.objects.get(registered_model__organization=org, registered_model__name=DEMO_MODEL)
    assert ModelAlias.objects.get(registered_model=version.registered_model, name="production").version == version
    assert version.input_schema["classes"] == ["no finding", "nodule"]
    assert version.metrics["accuracy"] >= 0.85, version.metrics["epochs"]
    split = version.metrics["split"]
    assert split["train"]["patients"] + split["validation"]["patients"] == TRAINING_PATIENTS, split
    assert split["patients_in_both"] == 0
    # the new studies were routed by the rule and analysed: suggestion, SR and saliency map stored
    rule = RoutingRule.objects.get(organization=org, name=DEMO_RULE)
    analyses = list(Analysis.objects.filter(organization=org).select_related("job"))
    assert len(analyses) == NEW_STUDIES
    for analysis in analyses:
        assert analysis.routing_rule == rule and analysis.trigger == "routing"
        assert analysis.job.status == "succeeded", analysis.job.error
        assert analysis.suggested_label in {"no finding", "nodule"}
        sr = Instance.objects.get(organization=org, sop_instance_uid=analysis.sr_sop_instance_uid)
        assert sr.series.study == analysis.study and sr.series.modality == "SR"
        assert Instance.objects.filter(organization=org, sop_instance_uid=analysis.saliency_sop_instance_uid).exists()
        with default_storage.open(sr.file, "rb") as handle:
            assert pydicom.dcmread(handle).VerificationFlag == "UNVERIFIED"
    # the generated nodules are found: every new study's suggestion is the class it was drawn as
    drawn = {image.study_uid: image.label for image in _new_studies()}
    assert {a.study.study_instance_uid: a.suggested_label for a in analyses} == drawn
    # the saliency map points at the nodule: the peak lands on it for most unseen positives,
    # many times more often than chance (with the finer layers new versions record)
    assert version.input_schema["gradcam_layer"] == "layer2+layer3"
    hit_rate, chance_rate, positives = _saliency_hits(version)
    print(
        f"demo classifier: validation accuracy {version.metrics['accuracy']}, saliency peak on the nodule "
        f"for {hit_rate:.0%} of {positives} unseen positives (chance {chance_rate:.1%})"
    )
    assert chance_rate < 0.1, chance_rate
    assert hit_rate > 0.5, f"peak on the nodule for {hit_rate:.0%} of {positives} (chance {chance_rate:.0%})"
    # one report signed by the demo clinician, with its verified SR in the study
    (report,) = Report.objects.filter(organization=org)
    assert SIGNED_STUDIES == 1 and report.status == "signed" and report.signed_by == clinician
    assert Instance.objects.filter(organization=org, sop_instance_uid=report.sr_sop_instance_uid).exists()
    assert "signed by demo-clinician" in output
    # the clinician's worklist lists what needs a read: the analysed new studies, not the 120
    # labelled training studies (nor the signed one); every state is one filter away
    clinician_client = client_for(org, "clinician")
    page = clinician_client.get("/portal/medical/worklist/").content.decode()
    assert page.count('data-state="ai_suggested"') == NEW_STUDIES - SIGNED_STUDIES
    assert 'data-state="labelled"' not in page and 'data-state="reported"' not in page
    everything = clinician_client.get("/portal/medical/worklist/", {"state": "labelled"}).content.decode()
    assert "Labelled (training data)" in everything
    page = clinician_client.get("/portal/medical/worklist/", {"state": "any"}).content.decode()
    assert "Reported" in page and "AI suggested" in page

    # seeding again trains, analyses and signs nothing
    counts = (ModelVersion.objects.count(), Analysis.objects.count(), Report.objects.count(), Instance.objects.count())
    _seed(org)
    assert (
        ModelVersion.objects.count(),
        Analysis.objects.count(),
        Report.objects.count(),
        Instance.objects.count(),
    ) == counts

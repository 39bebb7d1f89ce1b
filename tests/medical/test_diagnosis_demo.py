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
    # the generated nodules are found: the suggestions follow the generator's alternating classes
    assert {a.suggested_label for a in analyses} == {"no finding", "nodule"}
    # one report signed by the demo clinician, with its verified SR in the study
    (report,) = Report.objects.filter(organization=org)
    assert SIGNED_STUDIES == 1 and report.status == "signed" and report.signed_by == clinician
    assert Instance.objects.filter(organization=org, sop_instance_uid=report.sr_sop_instance_uid).exists()
    assert "signed by demo-clinician" in output
    # the clinician's worklist has studies in every state
    page = client_for(org, "clinician").get("/portal/medical/worklist/").content.decode()
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

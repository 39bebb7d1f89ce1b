"""`seed_demo` for the diagnosis half: a chest-radiograph classifier trained on generated images,
a routing rule, new studies analysed on receipt, and one signed report.

Everything runs the product's own paths, inline (the worker is not up yet while `make run`
seeds): the generated radiographs (`fixtures.medical_synthetic`: no third-party image, nothing
downloaded) are stored like any received instance, the classifier is trained by the real
training job (`classifier_training_start` + the `ml.train` job), the rule is created by its
service, the new studies are routed by `routing.studies_received` exactly as a STOW would
route them and analysed by the analysis job (SR and saliency map written into each study), and
the demo clinician signs one report. So the worklist opens with studies in every state, the
study viewer has an AI suggestion with its overlay, and the model page has metrics and use.

Idempotent: what exists is left as it is (a second seed trains, analyses and signs nothing).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from apps.medical.choices import ReceivedVia
from apps.medical.models import Analysis, Report, RoutingRule, Study
from apps.medical.services import instance_store
from core.jobs.runner import job_execute
from core.storage import file_sha256, scratch_directory
from core.tenancy.actors import Actor
from core.tenancy.choices import Role
from core.tenancy.models import Membership, Organization
from fixtures.medical_synthetic import SyntheticImage, synthetic_chests, write

DEMO_MODEL = "chest-xray-demo"
DEMO_RULE = "Chest radiographs"
TRAINING_PATIENTS = 120  # 60 per class: under a minute of CPU at 64 x 64
NEW_STUDIES = 4  # arrive after training: routed and analysed
SIGNED_STUDIES = 1  # of the new ones, reported and signed by the demo clinician
TRAINING_PARAMS = {
    "epochs": 25,
    "batch_size": 16,
    "learning_rate": 0.001,
    "input_size": 64,
    "architecture": "resnet18",
    "validation_fraction": 0.25,
    "seed": 0,
}


def diagnosis_demo_seed(*, org: Organization, stdout: Any) -> None:
    actor = Actor.system(org)
    today = dt.datetime.now(dt.UTC).date()
    history = list(synthetic_chests(TRAINING_PATIENTS, seed=0, end_date=today - dt.timedelta(days=7)))
    _store(actor, history)
    version = _classifier(actor, history, stdout)
    if version is None:
        return
    _routing_rule(actor)
    new = list(synthetic_chests(NEW_STUDIES, seed=1, first_number=TRAINING_PATIENTS + 1, end_date=today))
    studies = _store(actor, new)
    analysed = _analyse(actor, studies, stdout)
    _sign(org, analysed[:SIGNED_STUDIES], stdout)


def _store(actor: Actor, images: list[SyntheticImage]) -> list[Study]:
    """Store the images like received instances (the same bytes again are a no-op)."""
    with scratch_directory(prefix="medical-demo-chests-") as folder:
        for image in images:
            path = write(image, folder)
            instance_store(
                actor=actor,
                path=path,
                sha256=file_sha256(path),
                size=path.stat().st_size,
                received_via=ReceivedVia.DEMO,
            )
    uids = [image.study_uid for image in images]
    studies = {
        s.study_instance_uid: s
        for s in Study.objects.filter(organization=actor.organization, study_instance_uid__in=uids)
    }
    return [studies[uid] for uid in uids if uid in studies]


def _classifier(actor: Actor, history: list[SyntheticImage], stdout: Any) -> Any:
    from apps.medical.training import classifier_training_start
    from ml.models import ModelVersion

    version = (
        ModelVersion.objects.filter(
            registered_model__organization=actor.organization, registered_model__name=DEMO_MODEL
        )
        .order_by("-number")
        .first()
    )
    if version is not None:
        return version
    stdout.write(
        f"  training the demo chest classifier ({TRAINING_PATIENTS} generated radiographs, "
        f"{TRAINING_PARAMS['epochs']} epochs, under a minute on CPU) …"
    )
    run = classifier_training_start(
        actor=actor,
        model_name=DEMO_MODEL,
        labels=[{"uid": image.study_uid, "label": image.label} for image in history],
        classes=["no finding", "nodule"],
        params=TRAINING_PARAMS,
        promote=True,
    )
    job_execute(job_id=run.job_id)
    run.refresh_from_db()
    version = ModelVersion.objects.filter(training_run=run).first()
    if version is None:
        stdout.write(f"  the demo classifier did not train: {run.job.error or run.job.message}")
        return None
    metrics = version.metrics
    stdout.write(
        f"  classifier {DEMO_MODEL} v{version.number}: validation accuracy {metrics.get('accuracy')}, "
        f"ROC AUC {metrics.get('roc_auc')}"
    )
    return version


def _routing_rule(actor: Actor) -> None:
    from apps.medical.routing import routing_rule_create
    from ml.selectors import registered_model_get

    if RoutingRule.objects.filter(organization=actor.organization, name=DEMO_RULE).exists():
        return
    routing_rule_create(
        actor=actor,
        name=DEMO_RULE,
        registered_model=registered_model_get(org=actor.organization, name=DEMO_MODEL),
        modality="CR",
        body_part="CHEST",
    )


def _analyse(actor: Actor, studies: list[Study], stdout: Any) -> list[Analysis]:
    """Route the new studies as a STOW would, and run their analyses inline."""
    from apps.medical.routing import studies_received

    waiting = [study.pk for study in studies if not study.analyses.exists()]
    for analysis in studies_received(actor=actor, study_ids=waiting):
        job_execute(job_id=analysis.job_id)
    analysed = list(
        Analysis.objects.filter(study__in=studies, job__status="succeeded").select_related("study").order_by("study_id")
    )
    if waiting:
        suggestions = ", ".join(f"{a.suggested_label} ({a.probability:.2f})" for a in analysed)
        stdout.write(f"  {len(analysed)} new chest studies analysed on receipt: {suggestions}")
    return analysed


def _sign(org: Organization, analyses: list[Analysis], stdout: Any) -> None:
    from apps.medical.reports import ReportContent, report_create, report_sign

    membership = (
        Membership.objects.filter(organization=org, role=Role.CLINICIAN).select_related("user").order_by("id").first()
    )
    if membership is None:
        return
    clinician = Actor.for_user(organization=org, user=membership.user, role=Role.CLINICIAN)
    for analysis in analyses:
        if Report.objects.filter(study=analysis.study).exists():
            continue
        report = report_create(
            actor=clinician,
            study=analysis.study,
            analysis_id=analysis.pk,
            content=ReportContent(
                findings="PA chest radiograph (generated demo image). "
                + (
                    "A small round opacity in a lung field."
                    if analysis.suggested_label == "nodule"
                    else "Clear lung fields."
                ),
                impression="Demo report: "
                + (
                    "pulmonary nodule; recommend follow-up CT."
                    if analysis.suggested_label == "nodule"
                    else "no acute finding."
                ),
                ai_decision="accepted",
            ),
        )
        report_sign(actor=clinician, report=report)
        stdout.write(
            f"  report on study {analysis.study.accession_number or analysis.study.study_instance_uid} "
            f"signed by {membership.user.username}"
        )

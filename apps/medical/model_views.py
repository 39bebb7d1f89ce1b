"""The imaging lead's model pages (`/portal/medical/models/…`): the organization's image
classifiers, and per version its validation metrics (accuracy, ROC AUC, sensitivity and
specificity, the confusion matrix, the ROC and calibration curves, the training curve), its
model card, its aliases, and how it does in use: the weekly share of each class it suggests and
the clinicians' agreement rate (`apps.medical.monitoring`).

Also the imaging lead's forms: training a classifier from a CSV of labels (the service behind
`POST /api/v1/medical/training-runs/`, with the run's live progress per epoch) and the routing
rules that analyse new studies on receipt (`apps.medical.routing`). Clinicians may look; only
org admins may train or change rules (the services check, as for the API).

Models are the organization's, not a patient's: these pages write no PHI access rows.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.safestring import SafeString
from django.views.decorators.http import require_POST

from apps.medical import routing, training
from apps.medical.choices import DOMAIN
from apps.medical.forms import ClassifierTrainForm, RoutingRuleForm
from apps.medical.monitoring import VersionMonitoring, classifier_monitoring
from apps.medical.views import clinician_required
from core.errors import DomainError
from core.portal.charts import BarSeries, XYChart, column_chart
from core.portal.forms import add_domain_error
from core.tenancy.actors import Actor
from ml.charts import reliability_chart, roc_chart
from ml.models import ModelVersion
from ml.selectors import model_version_get, registered_model_get, registered_model_list, training_run_get

CLASSIFIER_KIND = "medical.image_classifier"
MONITORING_WEEKS = 12


@clinician_required
def model_list(request: HttpRequest, actor: Actor) -> HttpResponse:
    models = registered_model_list(org=actor.organization, kind=CLASSIFIER_KIND, domain=DOMAIN).prefetch_related(
        "aliases__version", "versions"
    )
    rows = []
    for model in models:
        aliases = {alias.name: alias.version for alias in model.aliases.all()}
        shown = aliases.get("production") or max(model.versions.all(), key=lambda v: v.number, default=None)
        rows.append({"model": model, "version": shown, "aliases": sorted(aliases), "metrics": _headline(shown)})
    runs = training_run_list_recent(actor)
    return render(request, "medical/model_list.html", {"rows": rows, "runs": runs, "can_train": actor.is_org_admin})


def training_run_list_recent(actor: Actor, limit: int = 10) -> list[Any]:
    from ml.models import TrainingRun

    return list(
        TrainingRun.objects.filter(organization=actor.organization, kind=CLASSIFIER_KIND)
        .select_related("registered_model", "job")
        .order_by("-created_at", "-id")[:limit]
    )


# --- Training --------------------------------------------------------------------------------------


@clinician_required
def train(request: HttpRequest, actor: Actor) -> HttpResponse:
    """The training form: a CSV of uid,label and the run's parameters → the run's progress page."""
    form = ClassifierTrainForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            actor.require_org_admin("train classifiers")
            labels = training.labels_csv_parse(data["labels_file"])
            run = training.classifier_training_start(
                actor=actor,
                model_name=data["model"],
                labels=labels,
                classes=form.class_names(),
                params=form.params(),
                promote=bool(data.get("promote")),
                base_version=data.get("base_version"),
            )
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            return redirect("medical:training-run", run_id=run.pk)
    return render(request, "medical/train.html", {"form": form, "can_train": actor.is_org_admin})


@clinician_required
def training_run(request: HttpRequest, actor: Actor, run_id: int) -> HttpResponse:
    run = training_run_get(org=actor.organization, run_id=run_id, domain=DOMAIN)
    version = ModelVersion.objects.filter(training_run=run).first()
    return render(
        request,
        "medical/training_run.html",
        {
            "run": run,
            "version": version,
            "classes": ", ".join(run.data.get("classes") or []),
            "labels": len(run.data.get("labels") or []),
            "live_chart": _training({"epochs": run.live_metrics}),
        },
    )


# --- Routing rules ---------------------------------------------------------------------------------


def _rule_initial(rule: Any) -> dict[str, Any]:
    return {
        "name": rule.name,
        "modality": rule.modality,
        "body_part": rule.body_part,
        "series_description_pattern": rule.series_description_pattern,
        "registered_model": rule.registered_model_id,
        "alias": rule.alias,
        "active": rule.active,
    }


def _rule_values(form: RoutingRuleForm) -> dict[str, Any]:
    data = form.cleaned_data
    return {key: data[key] for key in routing.RULE_FIELDS if key in data}


@clinician_required
def routing_rules(request: HttpRequest, actor: Actor) -> HttpResponse:
    """The organization's rules, and a form for a new one (org admins)."""
    form = RoutingRuleForm(
        request.POST or None, org=actor.organization, initial={"alias": "production", "active": True}
    )
    if request.method == "POST" and form.is_valid():
        values = _rule_values(form)
        try:
            rule = routing.routing_rule_create(actor=actor, **values)
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(request, f"Routing rule “{rule.name}” created.")
            return redirect("medical:routing-rules")
    rules = routing.routing_rule_list(org=actor.organization).select_related("registered_model")
    return render(request, "medical/routing_rules.html", {"form": form, "rules": rules, "can_edit": actor.is_org_admin})


@clinician_required
def routing_rule_edit(request: HttpRequest, actor: Actor, rule_id: int) -> HttpResponse:
    rule = routing.routing_rule_get(org=actor.organization, rule_id=rule_id)
    form = RoutingRuleForm(request.POST or None, org=actor.organization, initial=_rule_initial(rule))
    if request.method == "POST" and form.is_valid():
        try:
            routing.routing_rule_update(actor=actor, rule=rule, data=_rule_values(form))
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(request, f"Routing rule “{form.cleaned_data['name']}” saved.")
            return redirect("medical:routing-rules")
    return render(
        request, "medical/routing_rule_edit.html", {"form": form, "rule": rule, "can_edit": actor.is_org_admin}
    )


@require_POST
@clinician_required
def routing_rule_delete(request: HttpRequest, actor: Actor, rule_id: int) -> HttpResponse:
    rule = routing.routing_rule_get(org=actor.organization, rule_id=rule_id)
    name = rule.name
    try:
        routing.routing_rule_delete(actor=actor, rule=rule)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Routing rule “{name}” deleted.")
    return redirect("medical:routing-rules")


def _headline(version: ModelVersion | None) -> dict[str, Any]:
    metrics = (version.metrics if version else None) or {}
    return {
        "accuracy": metrics.get("accuracy"),
        "roc_auc": metrics.get("roc_auc"),
        "classes": ", ".join((version.input_schema or {}).get("classes") or []) if version else "",
    }


@clinician_required
def model_detail(request: HttpRequest, actor: Actor, name: str, number: int | None = None) -> HttpResponse:
    org = actor.organization
    model = registered_model_get(org=org, name=name, kind=CLASSIFIER_KIND, domain=DOMAIN)
    aliases = {alias.name: alias.version.number for alias in model.aliases.select_related("version")}
    versions = list(model.versions.order_by("-number"))
    if number is None:
        number = aliases.get("production") or (versions[0].number if versions else 0)
    version = model_version_get(org=org, name=name, number=number)
    metrics = version.metrics or {}
    classes = list((version.input_schema or {}).get("classes") or [])
    today = dt.datetime.now(dt.UTC).date()
    monitoring = {
        m.version: m
        for m in classifier_monitoring(
            org=org, registered_model=model, since=today - dt.timedelta(weeks=MONITORING_WEEKS - 1), until=today
        )
    }
    watched = monitoring.get(version.number)
    return render(
        request,
        "medical/model_detail.html",
        {
            "model": model,
            "version": version,
            "versions": versions,
            "aliases": sorted(aliases.items()),
            "metrics": metrics,
            "classes": classes,
            "class_rows": _class_rows(metrics, classes),
            "confusion": _confusion(metrics),
            "split_text": _split_text(metrics.get("split") or {}),
            "roc_chart": _roc(metrics),
            "calibration_chart": _calibration(metrics),
            "training_chart": _training(metrics),
            "card": version.model_card or {},
            "training_data_rows": _labelled(
                {k: v for k, v in ((version.model_card or {}).get("training_data") or {}).items() if k != "split"}
            ),
            "monitoring": watched,
            "shares_chart": _shares(watched, classes) if watched else None,
            "agreement_chart": _agreement(watched) if watched else None,
        },
    )


def _labelled(values: dict[str, Any]) -> list[tuple[str, str]]:
    """`{"images_per_class": {"nodule": 60}}` → `[("Images per class", "nodule 60")]`."""
    return [(key.replace("_", " ").capitalize(), _plain(value)) for key, value in values.items()]


def _plain(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{key} {_plain(item)}" for key, item in value.items()) or "none"
    if isinstance(value, (list, tuple)):
        return ", ".join(_plain(item) for item in value) or "none"
    return str(value)


def _split_text(split: dict[str, Any]) -> str:
    """ "train 90 patients (90 images) · validation 30 patients (30 images) · 0 patients in both"."""
    parts = [
        f"{side} {split[side].get('patients')} patients ({split[side].get('images')} images)"
        for side in ("train", "validation")
        if isinstance(split.get(side), dict)
    ]
    if "patients_in_both" in split:
        parts.append(f"{split['patients_in_both']} patients in both")
    return " · ".join(parts)


def _class_rows(metrics: dict[str, Any], classes: list[str]) -> list[dict[str, Any]]:
    per_class = metrics.get("per_class") or {}
    auc = metrics.get("roc_auc_per_class") or {}
    return [{"name": name, **(per_class.get(name) or {}), "roc_auc": auc.get(name)} for name in classes]


def _confusion(metrics: dict[str, Any]) -> dict[str, Any] | None:
    """The confusion matrix as rows of (count, share of the true class) for a shaded table."""
    confusion = metrics.get("confusion_matrix") or {}
    labels, matrix = confusion.get("labels") or [], confusion.get("matrix") or []
    if not labels or len(matrix) != len(labels):
        return None
    rows = []
    for label, counts in zip(labels, matrix, strict=True):
        total = sum(counts) or 1
        # each cell shaded by its share of the true class's images (the diagonal dark when right)
        rows.append(
            {
                "label": label,
                "cells": [(count, round(100 * count / total), f"{0.08 + 0.6 * count / total:.2f}") for count in counts],
            }
        )
    return {"labels": labels, "rows": rows}


def _roc(metrics: dict[str, Any]) -> SafeString | None:
    points = metrics.get("roc_curve")
    if isinstance(points, dict):  # {"fpr": [...], "tpr": [...]}
        points = list(zip(points.get("fpr") or [], points.get("tpr") or [], strict=False))
    if not points:
        return None
    return roc_chart([(f"{metrics.get('positive_class', 'positive')} (AUC {metrics.get('roc_auc')})", points)])


def _calibration(metrics: dict[str, Any]) -> SafeString | None:
    bins = [b for b in (metrics.get("calibration") or {}).get("bins") or [] if b.get("count")]
    if not bins:
        return None
    return reliability_chart(
        [("Validation", [(b["mean_confidence"], b["accuracy"]) for b in bins])],
        title="Calibration (top probability)",
        x_label="Mean confidence",
        y_label="Accuracy",
    )


def _training(metrics: dict[str, Any]) -> SafeString | None:
    epochs = [e for e in metrics.get("epochs") or [] if isinstance(e, dict)]
    if len(epochs) < 2:
        return None
    chart = XYChart(title="Training", x_label="Epoch", y_label="Loss / validation AUC")
    chart.line([(e["epoch"], e["loss"]) for e in epochs if e.get("loss") is not None], label="Loss", markers=True)
    chart.line(
        [(e["epoch"], e["val_auc"]) for e in epochs if e.get("val_auc") is not None],
        label="Validation AUC",
        markers=True,
    )
    return chart.render()


def _shares(watched: VersionMonitoring, classes: list[str]) -> SafeString:
    names = classes or sorted({label for week in watched.weeks for label in week.suggestions})
    return column_chart(
        title="Suggested class per week (share of analyses)",
        categories=[week.week.strftime("%d %b") for week in watched.weeks],
        series=[BarSeries(label=name, values=[week.shares.get(name, 0.0) for week in watched.weeks]) for name in names],
        stacked=True,
        y_label="Share",
        empty_message="No analyses in these weeks",
    )


def _agreement(watched: VersionMonitoring) -> SafeString | None:
    points = [(i, week.agreement_rate) for i, week in enumerate(watched.weeks) if week.agreement_rate is not None]
    if not points:
        return None
    chart = XYChart(
        title="Clinicians' agreement per week",
        x_label=f"Week (the last {len(watched.weeks)}, oldest left)",
        y_label="Accepted",
        x_range=(0, max(1, len(watched.weeks) - 1)),
        y_range=(0, 1),
        x_ticks=False,
    )
    chart.line(
        [(i, rate) for i, rate in points],
        label="Accepted share of signed reports",
        markers=True,
        point_titles=[
            f"week of {watched.weeks[i].week:%d %b}: {rate:.0%} of {watched.weeks[i].signed}" for i, rate in points
        ],
    )
    return chart.render()

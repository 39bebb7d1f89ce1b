"""Org-admin portal pages of the model registry: models, versions, and moving aliases (promote/rollback).

Mounted at `/models/` through `MlConfig` (see `core.apps.PortalAppConfig`)."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from core.errors import DomainError
from core.portal.access import not_found_as_404, org_admin_required, portal_actor
from core.portal.forms import add_domain_error
from core.portal.presenters import pretty_json, split_scalars, value_rows
from ml.charts import metrics_per_version_chart
from ml.choices import PRODUCTION_ALIAS
from ml.forms import ModelAliasSetForm
from ml.models import ModelVersion, RegisteredModel
from ml.presenters import headline_metrics
from ml.selectors import model_alias_history, model_version_get, registered_model_get, registered_model_list
from ml.services import model_alias_set


@dataclass(frozen=True)
class VersionRow:
    """One line of a version table: the version, the aliases on it, its headline metrics."""

    version: ModelVersion
    aliases: list[str]
    metrics: list[tuple[str, str]]


def _version_rows(model: RegisteredModel) -> list[VersionRow]:
    aliases_by_version: dict[int, list[str]] = {}
    for alias in model.aliases.all():
        aliases_by_version.setdefault(alias.version_id, []).append(alias.name)
    return [
        VersionRow(version=v, aliases=sorted(aliases_by_version.get(v.pk, [])), metrics=headline_metrics(v.metrics))
        for v in model.versions.all()
    ]


@org_admin_required
def model_list_view(request: HttpRequest) -> HttpResponse:
    models = registered_model_list(org=portal_actor(request).organization)
    rows = []
    for model in models:
        versions = _version_rows(model)
        production = next((row for row in versions if PRODUCTION_ALIAS in row.aliases), None)
        rows.append({"model": model, "versions": versions, "production": production})
    return render(request, "ml/models/list.html", {"rows": rows})


def _render_model_detail(
    request: HttpRequest, model: RegisteredModel, form: ModelAliasSetForm | None = None, status: int = 200
) -> HttpResponse:
    actor = portal_actor(request)
    versions = _version_rows(model)
    if form is None:
        latest = versions[0].version.number if versions else None
        form = ModelAliasSetForm(initial={"version": latest}, version_numbers=[row.version.number for row in versions])
    history = model_alias_history(org=actor.organization, name=model.name)[:50]
    metrics_svg = metrics_per_version_chart([row.version for row in versions])
    context = {"model": model, "versions": versions, "form": form, "history": history, "metrics_svg": metrics_svg}
    return render(request, "ml/models/detail.html", context, status=status)


@org_admin_required
def model_detail_view(request: HttpRequest, name: str) -> HttpResponse:
    with not_found_as_404():
        model = registered_model_get(org=portal_actor(request).organization, name=name)
    return _render_model_detail(request, model)


@org_admin_required
def model_version_view(request: HttpRequest, name: str, number: int) -> HttpResponse:
    actor = portal_actor(request)
    with not_found_as_404():
        version = model_version_get(org=actor.organization, name=name, number=number)
    version_numbers = version.registered_model.versions.values_list("number", flat=True)
    form = ModelAliasSetForm(initial={"version": version.number}, version_numbers=version_numbers)
    metrics, structured_metrics = split_scalars(version.metrics)
    context = {
        "version": version,
        "model": version.registered_model,
        "aliases": sorted(alias.name for alias in version.aliases.all()),
        "metrics": metrics,
        "structured_metrics": structured_metrics,
        "params": value_rows(version.params),
        "files": sorted((version.manifest.get("files") or {}).items()),
        "input_schema": pretty_json(version.input_schema) if version.input_schema else "",
        "model_card": pretty_json(version.model_card) if version.model_card else "",
        "form": form,
    }
    return render(request, "ml/models/version.html", context)


@require_POST
@org_admin_required
def model_alias_set_view(request: HttpRequest, name: str) -> HttpResponse:
    actor = portal_actor(request)
    with not_found_as_404():
        model = registered_model_get(org=actor.organization, name=name)
    form = ModelAliasSetForm(request.POST, version_numbers=[v.number for v in model.versions.all()])
    if form.is_valid():
        alias, number = form.cleaned_data["alias"], form.cleaned_data["version"]
        try:
            model_alias_set(
                actor=actor, name=model.name, alias=alias, version_number=number, reason=form.cleaned_data["reason"]
            )
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(request, f"{model.name}@{alias} now points at v{number}.")
            return redirect("ml:model-detail", name=model.name)
    return _render_model_detail(request, model, form=form, status=400)

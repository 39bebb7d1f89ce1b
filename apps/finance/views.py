"""The credit analyst portal (`/portal/finance/…`): credit analysts and org admins.

Views are thin: parse a form, call one service or selector, render. Domain errors from a
service come back as form errors/messages; another organization's rows are 404.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.files.storage import default_storage
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from apps.finance import batch_scoring, presenters, selectors, services
from apps.finance.choices import DOMAIN, ColumnRole, DecisionSource
from apps.finance.forms import (
    BatchForm,
    DatasetUploadForm,
    DecisionSearchForm,
    PolicyForm,
    PromoteForm,
    TrainForm,
    application_form_for,
)
from apps.finance.monitoring import monitoring_enqueue, monitoring_report
from apps.finance.scoring import credit_encoder
from core.errors import DomainError
from core.portal.access import role_required
from core.portal.forms import add_domain_error
from core.tenancy.actors import Actor
from core.tenancy.choices import Role
from ml.selectors import model_version_get, registered_model_get, registered_model_list

analyst_required = role_required(
    Role.CREDIT_ANALYST, message="The credit portal is for credit analysts and organization admins."
)


@analyst_required
def home(request: HttpRequest, actor: Actor) -> HttpResponse:
    org = actor.organization
    return render(
        request,
        "finance/home.html",
        {
            "models": registered_model_list(org=org, domain=DOMAIN),
            "datasets": selectors.dataset_list(org=org)[:10],
            "batches": selectors.batch_list(org=org)[:5],
            "decisions": selectors.decision_list(org=org)[:10],
            "policy": selectors.policy_get(org=org),
        },
    )


# --- Datasets and training ---------------------------------------------------------------------------


@analyst_required
def dataset_upload(request: HttpRequest, actor: Actor) -> HttpResponse:
    form = DatasetUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            dataset = services.dataset_create(actor=actor, upload=form.cleaned_data["file"], **form.service_fields())
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(request, f"Uploaded {dataset.rows} rows. Review the schema, then train.")
            return redirect("finance:dataset-detail", dataset_id=dataset.pk)
    return render(request, "finance/dataset_upload.html", {"form": form})


@analyst_required
def dataset_detail(request: HttpRequest, actor: Actor, dataset_id: int) -> HttpResponse:
    dataset = selectors.dataset_get(org=actor.organization, dataset_id=dataset_id)
    train_form = TrainForm(request.POST if request.POST.get("action") == "train" else None)
    if request.method == "POST" and request.POST.get("action") == "schema":
        edits = []
        for column in dataset.schema:
            if column["role"] == ColumnRole.TARGET:
                continue
            name = column["name"]
            edit: dict[str, Any] = {
                "name": name,
                "description": request.POST.get(f"description__{name}", column.get("description", "")),
                "role": ColumnRole.FEATURE if request.POST.get(f"include__{name}") else ColumnRole.EXCLUDED,
            }
            wanted_type = request.POST.get(f"type__{name}")
            if wanted_type and wanted_type != column["type"]:
                edit["type"] = wanted_type
            edits.append(edit)
        try:
            services.dataset_schema_update(actor=actor, dataset=dataset, columns=edits)
            messages.success(request, "Schema saved.")
        except DomainError as exc:
            messages.error(request, f"{exc.message} {exc.fields}")
        return redirect("finance:dataset-detail", dataset_id=dataset.pk)
    if request.method == "POST" and train_form.is_valid():
        try:
            run = services.training_start(
                actor=actor,
                dataset=dataset,
                model_name=train_form.cleaned_data["model"],
                params=train_form.params(),
                promote=train_form.cleaned_data["promote"],
            )
        except DomainError as exc:
            add_domain_error(train_form, exc)
        else:
            return redirect("finance:training-run", run_id=run.pk)
    return render(request, "finance/dataset_detail.html", {"dataset": dataset, "train_form": train_form})


@analyst_required
def training_run(request: HttpRequest, actor: Actor, run_id: int) -> HttpResponse:
    run = selectors.training_run_get(org=actor.organization, run_id=run_id)  # another domain's run is 404
    version = getattr(run, "version", None)
    return render(request, "finance/training_run.html", {"run": run, "version": version})


# --- Models ------------------------------------------------------------------------------------------


def _promote(request: HttpRequest, *, actor: Actor, name: str, form: PromoteForm) -> None:
    """Move `production` to the form's version with its reason; raises DomainError when refused."""
    number = form.cleaned_data["version"]
    services.model_promote(actor=actor, name=name, version_number=number, reason=form.cleaned_data["reason"])
    messages.success(request, f"v{number} is now in production.")


@analyst_required
def model_detail(request: HttpRequest, actor: Actor, name: str, number: int | None = None) -> HttpResponse:
    org = actor.organization
    model = registered_model_get(org=org, name=name, domain=DOMAIN)
    aliases = {a.name: a.version.number for a in model.aliases.all()}
    if number is None:
        number = aliases.get("production") or max((v.number for v in model.versions.all()), default=0)
    version = model_version_get(org=org, name=name, number=number)
    promote_form = PromoteForm(request.POST or None, initial={"version": version.number})
    if request.method == "POST" and promote_form.is_valid():
        try:
            _promote(request, actor=actor, name=name, form=promote_form)
            return redirect("finance:model-detail", name=name)
        except DomainError as exc:
            add_domain_error(promote_form, exc)
    return render(
        request,
        "finance/model_detail.html",
        {
            "model": model,
            "aliases": aliases,
            "versions": model.versions.order_by("-number"),
            "promote_form": promote_form,
            "can_promote": actor.is_org_admin,
            **presenters.version_page(version, selectors.policy_snapshot(selectors.policy_get(org=org))),
        },
    )


@analyst_required
def model_compare(request: HttpRequest, actor: Actor, name: str) -> HttpResponse:
    org = actor.organization
    model = registered_model_get(org=org, name=name, domain=DOMAIN)
    numbers = sorted((v.number for v in model.versions.all()), reverse=True)
    try:
        a = int(request.GET.get("a") or (numbers[1] if len(numbers) > 1 else numbers[0]))
        b = int(request.GET.get("b") or numbers[0])
    except (ValueError, IndexError) as exc:
        raise Http404("No versions to compare.") from exc
    left, right = model_version_get(org=org, name=name, number=a), model_version_get(org=org, name=name, number=b)
    promote_form = PromoteForm(request.POST or None)
    if request.method == "POST" and promote_form.is_valid():
        # Promote one of the two versions being compared (org admins; the service refuses others).
        try:
            _promote(request, actor=actor, name=name, form=promote_form)
        except DomainError as exc:
            messages.error(request, exc.message)
        return redirect(f"{request.path}?a={a}&b={b}")
    aliases = {alias.name: alias.version.number for alias in model.aliases.all()}
    return render(
        request,
        "finance/model_compare.html",
        {
            "model": model,
            "numbers": numbers,
            "left": left,
            "right": right,
            **presenters.compare_page(left, right),
            "production": aliases.get("production"),
            "can_promote": actor.is_org_admin,
        },
    )


# --- Scoring and decisions -------------------------------------------------------------------------------


@analyst_required
def score(request: HttpRequest, actor: Actor) -> HttpResponse:
    version = selectors.credit_version_get(org=actor.organization, name=request.GET.get("model") or None)
    form_class = application_form_for(credit_encoder(version).features)
    form = form_class(request.POST or None)
    decision = None
    if request.method == "POST" and form.is_valid():
        try:
            decision = services.score_create(
                actor=actor,
                application_id=form.cleaned_data["application_id"],
                features=form.features(),
                model_name=version.registered_model.name,
                explain=form.cleaned_data["explain"],
                source=DecisionSource.PORTAL,
            )
        except DomainError as exc:
            add_domain_error(form, exc)
    return render(request, "finance/score.html", {"form": form, "version": version, "decision": decision})


@analyst_required
def decision_list(request: HttpRequest, actor: Actor) -> HttpResponse:
    form = DecisionSearchForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    decisions = selectors.decision_list(org=actor.organization, **{k: v for k, v in filters.items() if v})
    page = Paginator(decisions, 50).get_page(request.GET.get("page"))
    services.decisions_read_audit(actor=actor, decision_ids=[str(d.pk) for d in page])
    return render(request, "finance/decision_list.html", {"form": form, "page": page})


@analyst_required
def decision_detail(request: HttpRequest, actor: Actor, decision_id: str) -> HttpResponse:
    decision = services.decision_read(actor=actor, decision_id=decision_id)
    replay = services.decision_replay(actor=actor, decision=decision) if request.method == "POST" else None
    return render(request, "finance/decision_detail.html", {"decision": decision, "replay": replay})


# --- Batches -----------------------------------------------------------------------------------------


@analyst_required
def batch_list(request: HttpRequest, actor: Actor) -> HttpResponse:
    form = BatchForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            batch = batch_scoring.batch_create(
                actor=actor,
                upload=form.cleaned_data["file"],
                model_name=form.cleaned_data["model"] or None,
                name=form.cleaned_data["name"],
            )
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            return redirect("finance:batch-detail", batch_id=batch.pk)
    return render(
        request, "finance/batch_list.html", {"form": form, "batches": selectors.batch_list(org=actor.organization)[:50]}
    )


@analyst_required
def batch_detail(request: HttpRequest, actor: Actor, batch_id: int) -> HttpResponse:
    return render(
        request, "finance/batch_detail.html", {"batch": selectors.batch_get(org=actor.organization, batch_id=batch_id)}
    )


@analyst_required
def batch_results(request: HttpRequest, actor: Actor, batch_id: int) -> FileResponse:
    batch = selectors.batch_get(org=actor.organization, batch_id=batch_id)
    try:
        batch_scoring.batch_results_read(actor=actor, batch=batch)
    except DomainError as exc:
        raise Http404(exc.message) from exc
    return FileResponse(
        default_storage.open(batch.results_path, "rb"), as_attachment=True, filename=f"batch-{batch.pk}-results.csv"
    )


# --- Monitoring and policy -------------------------------------------------------------------------------


@analyst_required
def monitoring(request: HttpRequest, actor: Actor, name: str) -> HttpResponse:
    window = selectors.parse_window_days(request.GET.get("window_days"))
    if request.method == "POST":
        job = monitoring_enqueue(actor=actor, name=name, window_days=window)
        messages.success(request, "Monitoring snapshot started.")
        return redirect(f"/jobs/{job.pk}/")
    report = monitoring_report(org=actor.organization, name=name, window_days=window)
    history = list(reversed(selectors.monitoring_history(org=actor.organization, name=name)))
    return render(
        request,
        "finance/monitoring.html",
        {"name": name, "window": window, **presenters.monitoring_page(report, history)},
    )


@analyst_required
def policy(request: HttpRequest, actor: Actor) -> HttpResponse:
    current = selectors.policy_get(org=actor.organization)
    form = PolicyForm(request.POST or None, instance=current)
    if request.method == "POST":
        try:
            actor.require_org_admin("change the credit policy")
        except DomainError as exc:
            raise PermissionDenied(exc.message) from exc
        if form.is_valid():
            try:
                fields = {k: form.cleaned_data[k] for k in form.Meta.fields}
                services.policy_update(actor=actor, **fields)
                messages.success(request, "Credit policy saved.")
                return redirect("finance:policy")
            except DomainError as exc:
                add_domain_error(form, exc)
    examples = presenters.policy_examples(selectors.policy_snapshot(current))
    return render(request, "finance/policy.html", {"form": form, "examples": examples, "can_edit": actor.is_org_admin})

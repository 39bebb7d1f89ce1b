"""The merchant portal (`/portal/retail/…`): merchants and org admins.

Views are thin: parse a form, call one service or selector, render. Another organization's
rows are 404.
"""

from __future__ import annotations

from typing import Any

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.safestring import SafeString

from apps.retail import reports, selectors, services, serving
from apps.retail.choices import DOMAIN
from apps.retail.forms import TrainForm
from apps.retail.models import Customer, Event, Item
from core.errors import DomainError
from core.portal.access import role_required
from core.portal.charts import BarSeries, XYChart, column_chart
from core.portal.forms import add_domain_error
from core.tenancy.actors import Actor
from core.tenancy.choices import Role
from ml.selectors import model_version_get, registered_model_get, registered_model_list, training_run_get

merchant_required = role_required(
    Role.MERCHANT, message="The recommendations portal is for merchants and organization admins."
)
K = 10
METRICS = ("precision", "recall", "ndcg", "map", "hit_rate", "coverage")


def _ingest_context(org: Any) -> dict[str, Any]:
    return {
        "events": selectors.event_list(org=org).order_by("-timestamp", "-id")[:50],
        "imports": selectors.import_list(org=org)[:10],
    }


def _models(org: Any) -> list[dict[str, Any]]:
    rows = []
    for model in registered_model_list(org=org, domain=DOMAIN):
        production = next((a.version for a in model.aliases.all() if a.name == "production"), None)
        metrics = production.metrics if production is not None else {}
        rows.append(
            {
                "model": model,
                "production": production,
                "ndcg": metrics.get(f"ndcg@{K}"),
                "popularity_ndcg": (metrics.get("popularity") or {}).get(f"ndcg@{K}"),
                "beats_popularity": metrics.get("beats_popularity"),
            }
        )
    return rows


@merchant_required
def home(request: HttpRequest, actor: Actor) -> HttpResponse:
    org = actor.organization
    form = TrainForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            run = services.training_start(
                actor=actor, algorithm=form.cleaned_data["algorithm"], promote=form.cleaned_data["promote"]
            )
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            return redirect("retail:training-run", run_id=run.pk)
    return render(
        request,
        "retail/home.html",
        {
            "counts": {
                "items": Item.objects.filter(organization=org).count(),
                "customers": Customer.objects.filter(organization=org).count(),
                "events": Event.objects.filter(organization=org).count(),
            },
            "models": _models(org),
            "train_form": form,
            "can_promote": actor.is_org_admin,
            **_ingest_context(org),
        },
    )


@merchant_required
def events(request: HttpRequest, actor: Actor) -> HttpResponse:
    return render(request, "retail/events.html", _ingest_context(actor.organization))


@merchant_required
def training_run(request: HttpRequest, actor: Actor, run_id: int) -> HttpResponse:
    run = training_run_get(org=actor.organization, run_id=run_id, domain=DOMAIN)  # another domain's run is 404
    losses = [m for m in run.live_metrics if isinstance(m, dict) and "loss" in m]
    version = getattr(run, "version", None)
    return render(request, "retail/training_run.html", {"run": run, "version": version, "losses": losses[-10:]})


@merchant_required
def item_list(request: HttpRequest, actor: Actor) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    items = selectors.item_list(org=actor.organization, search=query).order_by("external_id")
    page = Paginator(items, 50).get_page(request.GET.get("page"))
    return render(request, "retail/item_list.html", {"page": page, "q": query})


@merchant_required
def item_detail(request: HttpRequest, actor: Actor, item_id: str) -> HttpResponse:
    item = selectors.item_get(org=actor.organization, item_id=item_id)
    similar = serving.item_similar(actor=actor, item_id=item.external_id, filters=serving.Filters(n=10))
    return render(request, "retail/item_detail.html", {"item": item, "similar": similar})


@merchant_required
def customer_list(request: HttpRequest, actor: Actor) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    page = Paginator(selectors.customer_list(org=actor.organization, search=query), 50).get_page(
        request.GET.get("page")
    )
    return render(request, "retail/customer_list.html", {"page": page, "q": query})


@merchant_required
def customer_detail(request: HttpRequest, actor: Actor, customer_id: str) -> HttpResponse:
    org = actor.organization
    customer = selectors.customer_get(org=org, customer_id=customer_id)
    answer = serving.customer_recommend(
        actor=actor, customer=customer.external_id, filters=serving.Filters(n=10), explain=True
    )
    history = selectors.customer_history(org=org, customer_id=customer.external_id)
    return render(request, "retail/customer_detail.html", {"customer": customer, "history": history, "answer": answer})


def _metrics_chart(metrics: dict[str, Any]) -> SafeString:
    baseline = metrics.get("popularity") or {}
    names = [f"{name}@{K}" for name in METRICS]
    return column_chart(
        title=f"Offline metrics @{K} vs popularity",
        categories=names,
        series=[
            BarSeries(label="This version", values=[float(metrics.get(n) or 0) for n in names]),
            BarSeries(label="Popularity", values=[float(baseline.get(n) or 0) for n in names], colour_name="grey"),
        ],
        stacked=False,
        empty_message="No offline metrics",
    )


def _ctr_chart(report: dict[str, Any]) -> SafeString | None:
    periods = sorted({point["start"] for arm in report["arms"] for point in arm["series"]})
    if not periods:
        return None
    index = {start: i for i, start in enumerate(periods)}
    top = max([0.01] + [point["ctr"] for arm in report["arms"] for point in arm["series"]]) * 1.1
    chart = XYChart(title="CTR per alias over time", x_label="Day", y_label="CTR", y_range=(0, top), x_ticks=False)
    for arm in report["arms"]:
        chart.line(
            [(index[p["start"]], p["ctr"]) for p in arm["series"]],
            label=f"{arm['alias'] or '(none)'} v{arm['version']}",
            markers=True,
            point_titles=[f"{p['start'][:10]}: {p['ctr']:.3f}" for p in arm["series"]],
        )
    return chart.render()


@merchant_required
def model_detail(request: HttpRequest, actor: Actor, name: str, number: int | None = None) -> HttpResponse:
    org = actor.organization
    model = registered_model_get(org=org, name=name, domain=DOMAIN)
    aliases = {a.name: a.version.number for a in model.aliases.all()}
    if number is None:
        number = aliases.get("production") or max((v.number for v in model.versions.all()), default=0)
    version = model_version_get(org=org, name=name, number=number)
    metrics = version.metrics or {}
    split = selectors.traffic_split_get(org=org, model_name=model.name)
    report = reports.online_report(org=org, model_name=model.name, start=None, end=None)
    return render(
        request,
        "retail/model_detail.html",
        {
            "model": model,
            "version": version,
            "aliases": aliases,
            "versions": model.versions.order_by("-number"),
            "metrics": metrics,
            "metric_rows": [
                (f"{n}@{K}", metrics.get(f"{n}@{K}"), (metrics.get("popularity") or {}).get(f"{n}@{K}"))
                for n in METRICS
            ],
            "metrics_chart": _metrics_chart(metrics),
            "trials": [
                {**trial, "ndcg": trial.get(f"validation_ndcg@{K}")}
                for trial in (version.params or {}).get("trials") or []
                if isinstance(trial, dict)
            ],
            "report": report,
            "ctr_chart": _ctr_chart(report),
            "alias_rows": [(alias, n, split.get(alias)) for alias, n in sorted(aliases.items())],
        },
    )

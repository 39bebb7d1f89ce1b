"""The traffic operator portal (`/portal/traffic/…`): traffic operators and org admins.

Views are thin: parse a form, call one service or selector, render. Images are shown through
the org-checked API file endpoints (session-authenticated), never public media URLs.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.safestring import mark_safe

from apps.traffic import charts, detection, selectors, services, training, video_analysis
from apps.traffic.choices import DEFAULT_MODEL_NAME, DOMAIN, MODEL_KIND
from apps.traffic.forms import CameraForm, CountsForm, DetectForm, TrainForm, VideoForm
from core.errors import DomainError
from core.portal.access import role_required
from core.portal.forms import add_domain_error
from core.tenancy.actors import Actor
from core.tenancy.choices import Role
from ml.selectors import registered_model_get, registered_model_list, training_run_get

operator_required = role_required(
    Role.TRAFFIC_OPERATOR, message="The traffic portal is for traffic operators and organization admins."
)


@operator_required
def overview(request: HttpRequest, actor: Actor) -> HttpResponse:
    org = actor.organization
    form = CameraForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            camera = services.camera_create(actor=actor, **form.service_fields())
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(request, f"Camera {camera.name} registered.")
            return redirect("traffic:camera-detail", camera_id=camera.pk)
    return render(
        request,
        "traffic/overview.html",
        {
            "cameras": selectors.camera_list(org=org),
            "detections": selectors.detection_run_list(org=org)[:10],
            "videos": selectors.video_list(org=org)[:10],
            "models": registered_model_list(org=org, domain=DOMAIN),
            "form": form,
            "detect_form": DetectForm(),
        },
    )


def _counts_window(form: CountsForm) -> tuple[datetime, datetime, str, str]:
    data = form.cleaned_data if form.is_valid() else {}
    bucket = data.get("bucket") or "hour"
    start, end = selectors.counts_period(bucket=bucket, start=data.get("start"), end=data.get("end"))
    return start, end, bucket, data.get("line") or ""


@operator_required
def camera_detail(request: HttpRequest, actor: Actor, camera_id: int) -> HttpResponse:
    camera = selectors.camera_get(org=actor.organization, camera_id=camera_id)
    counts_form = CountsForm(request.GET or None)
    start, end, bucket, line = _counts_window(counts_form)
    try:
        counts = selectors.camera_counts(
            org=actor.organization, camera=camera, start=start, end=end, bucket=bucket, line=line or None
        )
    except (DomainError, ValueError) as exc:
        messages.error(request, getattr(exc, "message", str(exc)))
        counts = selectors.camera_counts(
            org=actor.organization, camera=camera, start=end - timedelta(days=1), end=end, bucket="hour"
        )
    overlay = ""
    if camera.last_frame and camera.last_frame_width and camera.last_frame_height:
        overlay = charts.camera_overlay_svg(camera, width=camera.last_frame_width, height=camera.last_frame_height)
    return render(
        request,
        "traffic/camera_detail.html",
        {
            "camera": camera,
            "overlay": mark_safe(overlay),  # noqa: S308 - built by us, every text escaped
            "chart": mark_safe(charts.counts_chart_svg(counts["buckets"])),  # noqa: S308
            "counts": counts,
            "counts_form": counts_form,
            "detect_form": DetectForm(),
            "video_form": VideoForm(),
            "videos": selectors.video_list(org=actor.organization, camera_id=camera.pk)[:10],
            "detections": selectors.detection_run_list(org=actor.organization, camera_id=camera.pk)[:10],
        },
    )


@operator_required
def detect(request: HttpRequest, actor: Actor) -> HttpResponse:
    """Upload an image (optionally for a camera) and show its boxes."""
    camera_id = request.POST.get("camera") or request.GET.get("camera")
    camera = selectors.camera_get(org=actor.organization, camera_id=camera_id) if camera_id else None
    form = DetectForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            run = detection.detection_run_create(
                actor=actor, upload=form.cleaned_data["image"], camera=camera, conf=form.cleaned_data["conf"]
            )
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            return redirect("traffic:detection-detail", run_id=run.pk)
    return render(request, "traffic/detect.html", {"form": form, "camera": camera})


@operator_required
def detection_detail(request: HttpRequest, actor: Actor, run_id: int) -> HttpResponse:
    run = selectors.detection_run_get(org=actor.organization, run_id=run_id)
    return render(request, "traffic/detection_detail.html", {"run": run})


@operator_required
def video_upload(request: HttpRequest, actor: Actor, camera_id: int) -> HttpResponse:
    camera = selectors.camera_get(org=actor.organization, camera_id=camera_id)
    form = VideoForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            video = video_analysis.video_analysis_create(
                actor=actor,
                upload=form.cleaned_data["video"],
                camera=camera,
                anti_flicker_frames=form.cleaned_data["anti_flicker_frames"],
            )
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            return redirect("traffic:video-detail", video_id=video.pk)
    return render(request, "traffic/video_upload.html", {"form": form, "camera": camera})


@operator_required
def video_detail(request: HttpRequest, actor: Actor, video_id: int) -> HttpResponse:
    video = selectors.video_get(org=actor.organization, video_id=video_id)
    return render(request, "traffic/video_detail.html", {"video": video})


@operator_required
def model_detail(request: HttpRequest, actor: Actor, name: str) -> HttpResponse:
    model = registered_model_get(org=actor.organization, name=name, domain=DOMAIN)
    production = next((a.version for a in model.aliases.all() if a.name == "production"), None)
    versions = []
    for version in model.versions.order_by("-number"):
        per_class = (version.metrics or {}).get("per_class", {})
        per_class_rows = [(name, {**m, "map50_95": m.get("mAP50-95")}) for name, m in sorted(per_class.items())]
        versions.append(
            {"version": version, "per_class": per_class_rows, "map50_95": (version.metrics or {}).get("mAP50-95")}
        )
    return render(
        request,
        "traffic/model_detail.html",
        {
            "model": model,
            "production": production,
            "versions": versions,
            "class_map": sorted(selectors.class_map_effective(org=actor.organization, registered_model=model).items()),
        },
    )


@operator_required
def train(request: HttpRequest, actor: Actor) -> HttpResponse:
    form = TrainForm(request.POST or None, request.FILES or None, initial={"model": DEFAULT_MODEL_NAME})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            run = training.detector_training_start(
                actor=actor,
                upload=data["dataset"],
                model_name=data["model"],
                epochs=data["epochs"],
                imgsz=data["imgsz"],
                batch=data["batch"],
                base_version=data.get("base_version"),
                architecture=None if data.get("base_version") else data.get("architecture") or "yolo11n",
            )
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            return redirect("traffic:training-run", run_id=run.pk)
    return render(request, "traffic/train.html", {"form": form, "can_train": actor.is_org_admin})


@operator_required
def training_run(request: HttpRequest, actor: Actor, run_id: int) -> HttpResponse:
    run = training_run_get(org=actor.organization, run_id=run_id)
    if run.kind != MODEL_KIND:
        raise Http404("Training run not found.")
    return render(request, "traffic/training_run.html", {"run": run})

"""Traffic benchmark: our detection path vs raw ultralytics, our video job vs raw `model.track`.

    .venv/bin/python -m benchmarks.traffic [--weights PATH.pt] [--imgsz 640] [--images 60] [--repeats 3] [--quick]

On the same weights, images, imgsz and device, in one run:
- images/second through `ml.runtime.predict` (the path the detection API uses) vs raw
  `YOLO(weights).predict(...)`, printed as a ratio (target ≥ 0.85x on CPU);
- video frames/second through the counting job's tracking + counting loop vs raw
  `model.track(stream=True)` on the same clip (made from the real frames);
- single-image API latency p50/p99 (POST /api/v1/traffic/detections/ through Django's test client,
  including validation, storage and the database writes; the annotated copy is drawn on demand,
  not per request);
- the single-image API p50 against raw `YOLO(weights).predict(path)` p50 on the same image file,
  weights and imgsz, interleaved call by call, printed as a ratio and as an overhead in ms
  (target: within 15 ms).

`--quick` runs a short version of everything (for a shared or slow machine).

Images: the real road frames in ../shared/data/traffic_cars/images/train (never copied here).
Without --weights, a yolo11n is trained for 1 epoch on generated shapes (same compute as any
yolo11n; the numbers are about speed, not accuracy). Medians over --repeats runs are printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings")
os.environ.setdefault("DJANGO_ENV", "test")

SHARED_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "traffic_cars" / "images" / "train"


def _read_image(path: Path) -> Any:
    import cv2

    image = cv2.imread(str(path))
    if image is None:
        raise SystemExit(f"cannot read {path}")
    return image


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--images", type=int, default=60)
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="10 images, 30 frames, 15 requests, 1 repeat")
    args = parser.parse_args()
    if args.quick:
        args.images, args.frames, args.requests, args.repeats = 10, 30, 15, 1
    if not SHARED_IMAGES.is_dir():
        print(f"Missing {SHARED_IMAGES}: the benchmark needs the shared traffic frames.")
        return 2

    import django

    django.setup()
    from django.conf import settings
    from django.test.utils import setup_test_environment

    work = Path(tempfile.mkdtemp(prefix="traffic-bench-"))
    settings.MEDIA_ROOT = work / "media"
    settings.ARTIFACT_ROOT = work / "artifacts"
    settings.MODEL_CACHE_DIR = work / "cache"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": work / "media"}},
        "artifacts": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": work / "art"}},
    }
    settings.DATABASES["default"]["NAME"] = str(work / "bench.sqlite3")
    settings.ALLOWED_HOSTS = ["*"]
    setup_test_environment()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    import cv2

    from apps.traffic.ml_offline import configure_ultralytics_offline

    configure_ultralytics_offline(work / "ultralytics")
    from ultralytics import YOLO

    weights = args.weights or _tiny_weights(work)
    paths = sorted(SHARED_IMAGES.glob("*.jpg"))[: args.images]
    images = [cv2.imread(str(p)) for p in paths]

    # --- Registry: import the weights as an org's production detector -------------------------
    from django.core.files.uploadedfile import SimpleUploadedFile

    from core.tenancy.actors import Actor
    from core.tenancy.services import api_key_create, organization_create
    from ml import runtime
    from ml.runtime import resolve_device
    from ml.services import model_version_import

    org = organization_create(slug="bench", name="Bench")[0]
    actor = Actor.system(org)
    upload = SimpleUploadedFile("w.pt", weights.read_bytes(), content_type="application/octet-stream")
    version = model_version_import(actor=actor, name="traffic-detector", kind="traffic.yolo_detector", upload=upload)
    device = resolve_device()
    runtime.load_version(version)  # load + warm-up outside the timings (the raw side warms up too)

    raw = YOLO(str(weights))
    raw.predict(images[0], imgsz=args.imgsz, device=device.replace("cuda:", ""), verbose=False)

    def ours_images() -> float:
        started = time.perf_counter()
        for image in images:
            runtime.predict(version, [image], imgsz=args.imgsz, conf=0.25)
        return len(images) / (time.perf_counter() - started)

    def raw_images() -> float:
        started = time.perf_counter()
        for image in images:
            raw.predict(image, imgsz=args.imgsz, conf=0.25, device=device.replace("cuda:", ""), verbose=False)
        return len(images) / (time.perf_counter() - started)

    ours_ips, raw_ips = [], []
    for _ in range(args.repeats):  # interleaved so both sides see the same machine load
        ours_ips.append(ours_images())
        raw_ips.append(raw_images())

    # --- Video: the counting job's loop vs raw model.track -------------------------------------------
    clip = work / "clip.mp4"
    frames = [_read_image(p) for p in sorted(SHARED_IMAGES.glob("*.jpg"))[: args.frames]]
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"mp4v"), 25.0, (width, height))
    for frame in frames:
        writer.write(cv2.resize(frame, (width, height)))
    writer.release()

    from apps.traffic.models import VideoAnalysis
    from apps.traffic.services import camera_create
    from apps.traffic.video_analysis import video_analysis_process
    from core.jobs.models import Job

    camera = camera_create(
        actor=actor, name="bench", lines=[{"name": "l", "points": [[0, 0.6], [1, 0.6]], "in_direction": "down"}]
    )
    from django.core.files.storage import default_storage

    video_name = default_storage.save("bench/clip.mp4", clip.open("rb"))

    def ours_video() -> float:
        job = Job.objects.create(organization=org, kind="traffic.video_count", queue="inference")
        video = VideoAnalysis.objects.create(
            organization=org,
            camera=camera,
            job=job,
            video=video_name,
            model_version=version,
            model_name="traffic-detector",
            model_version_number=1,
            recorded_at=job.created_at,
            imgsz=args.imgsz,
            conf=0.1,
            anti_flicker_frames=3,
            fps=25.0,
            width=width,
            height=height,
            frames=len(frames),
        )
        started = time.perf_counter()
        result = video_analysis_process(video_id=video.pk, report=lambda **kwargs: None)
        return result["frames"] / (time.perf_counter() - started)

    def raw_video() -> float:
        model = YOLO(str(weights))
        started = time.perf_counter()
        count = sum(
            1
            for _ in model.track(
                str(clip), imgsz=args.imgsz, stream=True, verbose=False, device=device.replace("cuda:", "")
            )
        )
        return count / (time.perf_counter() - started)

    ours_fps, raw_fps = [], []
    for _ in range(args.repeats):
        ours_fps.append(ours_video())
        raw_fps.append(raw_video())

    # --- API latency ------------------------------------------------------------------------------
    from rest_framework.test import APIClient

    key = api_key_create(actor=actor, name="bench", scopes=("traffic",)).raw_key
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    payloads = [p.read_bytes() for p in paths[: args.requests]]
    latencies = []
    for index, data in enumerate(payloads):
        started = time.perf_counter()
        response = client.post(
            "/api/v1/traffic/detections/",
            {"image": SimpleUploadedFile(f"{index}.jpg", data, content_type="image/jpeg"), "imgsz": args.imgsz},
            format="multipart",
        )
        latencies.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 201, response.content
    latencies.sort()

    # --- API overhead: the same image through the API and through raw predict, call by call ---------
    same_path = paths[0]
    same_bytes = same_path.read_bytes()
    api_ms, raw_ms = [], []
    for index in range(args.requests):
        started = time.perf_counter()
        response = client.post(
            "/api/v1/traffic/detections/",
            {
                "image": SimpleUploadedFile(f"same{index}.jpg", same_bytes, content_type="image/jpeg"),
                "imgsz": args.imgsz,
            },
            format="multipart",
        )
        api_ms.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 201, response.content
        started = time.perf_counter()
        raw.predict(str(same_path), imgsz=args.imgsz, conf=0.25, device=device.replace("cuda:", ""), verbose=False)
        raw_ms.append((time.perf_counter() - started) * 1000)
    api_p50, raw_p50 = statistics.median(api_ms), statistics.median(raw_ms)

    def pct(values: list[float], q: float) -> float:
        return values[min(len(values) - 1, round(q * (len(values) - 1)))]

    ours_m, raw_m = statistics.median(ours_ips), statistics.median(raw_ips)
    ours_v, raw_v = statistics.median(ours_fps), statistics.median(raw_fps)
    import torch

    print(f"device={device} torch={torch.__version__} threads={torch.get_num_threads()} weights={weights.name}")
    print(f"imgsz={args.imgsz} images={len(images)} ({width}x{height} real road frames) repeats={args.repeats}")
    print(f"detection  ours {ours_m:7.2f} img/s   raw predict {raw_m:7.2f} img/s   ratio {ours_m / raw_m:.3f}x")
    print(f"video      ours {ours_v:7.2f} fps     raw track   {raw_v:7.2f} fps     ratio {ours_v / raw_v:.3f}x")
    print(
        f"API POST /detections/ latency p50 {pct(latencies, 0.5):.1f} ms  p99 {pct(latencies, 0.99):.1f} ms "
        f"({len(latencies)} requests)"
    )
    print(
        f"API vs raw predict, same image {same_path.name}: API p50 {api_p50:.1f} ms  raw predict p50 {raw_p50:.1f} ms  "
        f"ratio {api_p50 / raw_p50:.2f}x  overhead {api_p50 - raw_p50:+.1f} ms ({len(api_ms)} calls each)"
    )
    return 0


def _tiny_weights(work: Path) -> Path:
    import shutil
    import zipfile

    from ultralytics import YOLO

    from fixtures.traffic_shapes import CLASS_NAMES, shapes_dataset_zip

    dataset = work / "dataset"
    with zipfile.ZipFile(shapes_dataset_zip(work / "shapes.zip", train=8, val=4, size=64)) as archive:
        archive.extractall(dataset)
    (dataset / "data.yaml").write_text(
        f"path: {dataset}\ntrain: images/train\nval: images/val\nnames:\n"
        + "".join(f"  {k}: {v}\n" for k, v in CLASS_NAMES.items())
    )
    model = YOLO("yolo11n.yaml")
    model.train(
        data=str(dataset / "data.yaml"),
        epochs=1,
        imgsz=64,
        batch=8,
        device="cpu",
        workers=0,
        plots=False,
        amp=False,
        project=str(work / "runs"),
        name="t",
        exist_ok=True,
        verbose=False,
    )
    target = work / "yolo11n-tiny.pt"
    assert model.trainer is not None
    shutil.copyfile(model.trainer.best, target)
    return target


if __name__ == "__main__":
    sys.exit(main())

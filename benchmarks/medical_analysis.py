"""Analysis benchmark: classifier inference through the analysis job vs a raw MONAI forward on
the same images and device, and seconds from STOW-RS of a study to its SR being retrievable.

Run by hand (not in the test suite):

    .venv/bin/python -m benchmarks.medical_analysis [--images 300] [--architecture densenet121] [--quick]

Data: MedNIST (`../shared/data/medical_mednist`, real 64 x 64 images wrapped as DICOM). A
classifier is trained for one epoch on a few of them (its accuracy is irrelevant here: the
network and its cost are what is measured), registered, and:

1. Inference: an analysis of a study of `--images` images, run by the `medical.analysis` job
   (eager, in this process; a first analysis warms the process up as a worker's first job
   does, the second is measured). Its result records the images/s of its `ml.runtime.predict` calls
   (batching, device, precision: the runtime's); vs raw: the same MONAI network built with
   `monai.networks.nets`, the same state dict (`torch.load(weights_only=True)`), on the same
   preprocessed inputs, batches of 64 under `torch.inference_mode()` (half precision on CUDA,
   as the runtime does). Goal: >= 0.8x. The whole job's images/s (reading and decoding every
   file, saliency, SR and secondary capture, findings) is printed beside it.
2. End to end: with a routing rule in place, a new study (the images under new UIDs) is STOWed
   and its SR fetched by WADO-RS; seconds from the start of the STOW to the SR retrieved. Jobs
   run eagerly here, so this is the archive's own path without a broker's queueing delay.

On a CUDA machine both run on the GPU (`ML_DEVICE=auto`), in half precision where the kind allows.
Everything runs on a throw-away PostgreSQL database (`benchmarks.throwaway_database`).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import io
import json
import time
from pathlib import Path
from typing import Any

from benchmarks.throwaway_database import PG_SERVER, django_on_throwaway_database

MEDNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "medical_mednist"
RAW_BATCH = 64
GOALS = {"inference_ratio": 0.8}
MODEL_NAME = "bench-classifier"


def mednist_paths(count: int) -> list[Path]:
    """`count` MedNIST files, taken round-robin over the classes."""
    with (MEDNIST / "labels.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    by_class: dict[str, list[Path]] = {}
    for row in rows:
        by_class.setdefault(row["label"], []).append(MEDNIST / row["dicom"])
    picked: list[Path] = []
    while len(picked) < count and any(by_class.values()):
        for paths in by_class.values():
            if paths and len(picked) < count:
                picked.append(paths.pop(0))
    return picked


def _train(architecture: str, input_size: int) -> tuple[Any, list[str]]:
    """One epoch on 8 images per class of two classes (files 90.. of the labels file)."""
    import numpy as np
    import pydicom

    from apps.medical.imaging import Preprocessing, dataset_inputs
    from apps.medical.ml import IMAGE_CLASSIFIER
    from apps.medical.training_data import ClassifierTrainingData, ImageSet
    from ml.kinds import report_nothing

    classes = ["CXR", "Hand"]
    preprocessing = Preprocessing(input_size=input_size, window_center=None, window_width=None)
    with (MEDNIST / "labels.csv").open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["label"] in classes]

    def image_set(selected: list[dict[str, str]]) -> Any:
        datasets = [pydicom.dcmread(MEDNIST / row["dicom"]) for row in selected]
        return ImageSet(
            inputs=np.stack([dataset_inputs(ds, preprocessing)[0] for ds in datasets]).astype(np.float32),
            labels=np.asarray([classes.index(row["label"]) for row in selected], dtype=np.int64),
            patients=[str(ds.PatientID) for ds in datasets],
            sop_instance_uids=[str(ds.SOPInstanceUID) for ds in datasets],
        )

    train = [row for label in classes for row in [r for r in rows if r["label"] == label][90:98]]
    validation = [row for label in classes for row in [r for r in rows if r["label"] == label][98:100]]
    data = ClassifierTrainingData(
        classes=classes,
        preprocessing=preprocessing,
        train=image_set(train),
        validation=image_set(validation),
        fingerprint=hashlib.sha256(json.dumps(train).encode()).hexdigest(),
        summary={"images": len(train) + len(validation), "source": "MedNIST (benchmark)"},
        split={"by": "patient", "train_images": len(train), "validation_images": len(validation)},
    )
    params = {"architecture": architecture, "epochs": 1, "batch_size": 8, "input_size": input_size, "augment": False}
    return IMAGE_CLASSIFIER.train(data=data, params=params, report=report_nothing), classes


def _raw_forward(trained: Any, architecture: str, classes: list[str], inputs: Any, device: str, half: bool) -> float:
    """Images/s of the plain MONAI network on `inputs` (already preprocessed), median of 3 runs."""
    import statistics

    import torch
    from monai.networks import nets

    buffer = io.BytesIO()
    torch.save(trained.model["state_dict"], buffer)
    buffer.seek(0)
    state = torch.load(buffer, map_location="cpu", weights_only=True)
    network: Any
    if architecture == "densenet121":
        network = nets.DenseNet121(spatial_dims=2, in_channels=1, out_channels=len(classes))
    elif architecture == "densenet169":
        network = nets.DenseNet169(spatial_dims=2, in_channels=1, out_channels=len(classes))
    elif architecture == "resnet18":
        network = nets.resnet18(spatial_dims=2, n_input_channels=1, num_classes=len(classes))
    else:
        network = nets.resnet34(spatial_dims=2, n_input_channels=1, num_classes=len(classes))
    network.load_state_dict(state)
    network = network.to(device).eval()
    if half:
        network = network.half()
    tensor = torch.from_numpy(inputs)

    def once() -> float:
        started = time.perf_counter()
        with torch.inference_mode():
            for start in range(0, len(tensor), RAW_BATCH):
                batch = tensor[start : start + RAW_BATCH].to(device)
                if half:
                    batch = batch.half()
                torch.softmax(network(batch).float(), dim=1).cpu()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return len(tensor) / (time.perf_counter() - started)

    once()  # warm-up (allocation, cuDNN's algorithm choice), as the runtime's load does
    return statistics.median(once() for _ in range(3))


def _stow(client: Any, paths: list[Path]) -> Any:
    boundary = "bench-boundary"
    body = bytearray()
    for path in paths:
        body += f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + path.read_bytes() + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
    return client.generic("POST", "/api/v1/medical/dicomweb/studies", bytes(body), content_type=content_type)


def _renamed_copies(paths: list[Path], folder: Path) -> list[Path]:
    """The images as a new study: new Study, Series and SOP Instance UIDs (one series per source series)."""
    import pydicom
    from pydicom.uid import generate_uid

    study_uid = generate_uid()
    series_uids: dict[str, str] = {}
    copies = []
    for number, path in enumerate(paths):
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uids.setdefault(str(ds.SeriesInstanceUID), generate_uid())
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        target = folder / f"copy-{number}.dcm"
        ds.save_as(target, enforce_file_format=True)
        copies.append(target)
    return copies


def analysis_benchmark(*, images: int, architecture: str, input_size: int, var_dir: Path) -> dict[str, Any]:
    """Both measurements on an already set-up Django (see `main`); returns the figures."""
    import numpy as np
    import pydicom
    import torch
    from django.test.utils import setup_test_environment
    from rest_framework.test import APIClient

    from apps.medical.imaging import dataset_inputs
    from apps.medical.models import Analysis
    from core.tenancy.actors import Actor
    from core.tenancy.services import api_key_create, organization_create
    from ml import runtime
    from ml.services import model_version_from_trained, registered_model_ensure

    org = organization_create(slug="bench-analysis", name="Bench analysis")[0]  # its own archive
    actor = Actor.system(org)
    # The test client's host ("testserver") allowed; a caller may have set this up already
    # (benchmarks.medical_diagnosis runs this part after its own).
    with contextlib.suppress(RuntimeError):
        setup_test_environment()
    client = APIClient()
    key = api_key_create(actor=actor, name="bench", scopes=("medical",)).raw_key
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    trained, classes = _train(architecture, input_size)
    model = registered_model_ensure(actor=actor, name=MODEL_NAME, kind="medical.image_classifier")
    version = model_version_from_trained(actor=actor, registered_model=model, trained=trained)
    device, half = runtime.device_of(version), runtime.load_version(version).half

    # 1. inference through the analysis job vs the raw network on the same inputs
    paths = mednist_paths(images)
    stored = _stow(client, paths)
    assert stored.status_code == 200, stored.content[:500]
    study_uid = str(pydicom.dcmread(paths[0], stop_before_pixels=True).StudyInstanceUID)

    def analyse() -> tuple[Any, float]:
        started = time.perf_counter()
        response = client.generic(
            "POST",
            f"/api/v1/medical/studies/{study_uid}/analyses/",
            json.dumps({"model": MODEL_NAME}),
            content_type="application/json",
        )
        seconds = time.perf_counter() - started
        assert response.status_code == 202, response.content[:500]
        job = Analysis.objects.select_related("job").get(pk=response.json()["analysis"]["id"]).job
        assert job.status == "succeeded", job.error
        return job, seconds

    # A worker keeps its loaded versions (and the Grad-CAM copy, and the kernels chosen for each
    # batch shape) for its lifetime: the first analysis warms them up, the second is measured.
    analyse()
    job, job_seconds = analyse()
    inference = (job.result or {})["inference"]
    preprocessing = runtime.preprocessor(version)
    inputs = np.stack([dataset_inputs(pydicom.dcmread(path), preprocessing)[0] for path in paths]).astype(np.float32)
    raw_per_s = _raw_forward(trained, architecture, classes, inputs, device, half)
    if device.startswith("cuda"):
        torch.cuda.empty_cache()

    # 2. STOW of a new study to its SR retrievable, with a routing rule in place
    rule = client.generic(
        "POST",
        "/api/v1/medical/routing-rules/",
        json.dumps({"name": "all", "model": MODEL_NAME}),
        content_type="application/json",
    )
    assert rule.status_code == 201, rule.content[:500]
    copies_dir = var_dir / "copies"
    copies_dir.mkdir(parents=True, exist_ok=True)
    copies = _renamed_copies(paths[: min(len(paths), 50)], copies_dir)
    new_study = str(pydicom.dcmread(copies[0], stop_before_pixels=True).StudyInstanceUID)
    started = time.perf_counter()
    assert _stow(client, copies).status_code == 200
    routed = Analysis.objects.filter(study__study_instance_uid=new_study).select_related("job").get()
    detail = client.get(f"/api/v1/medical/studies/{new_study}/analyses/{routed.pk}/").json()
    sr = client.get(detail["structured_report_url"], HTTP_ACCEPT='multipart/related; type="application/dicom"')
    assert sr.status_code == 200
    body = b"".join(sr.streaming_content) if sr.streaming else sr.content  # type: ignore[attr-defined]  # a WADO-RS retrieve streams
    stow_to_sr = time.perf_counter() - started
    assert detail["sr_sop_instance_uid"].encode() in body
    return {
        "device": device,
        "half": half,
        "architecture": architecture,
        "input_size": input_size,
        "images": len(paths),
        "job_inference_per_s": float(inference["images_per_second"]),
        "raw_forward_per_s": raw_per_s,
        "inference_ratio": float(inference["images_per_second"]) / raw_per_s,
        "whole_job_per_s": len(paths) / job_seconds,
        "stow_to_sr_seconds": stow_to_sr,
        "stow_to_sr_images": len(copies),
    }


def print_analysis_figures(figures: dict[str, Any]) -> None:
    precision = "half" if figures["half"] else "float32"
    print(f"Analysis ({figures['architecture']} {figures['input_size']}px, {figures['device']}, {precision}):")
    print(
        f"  inference through the analysis job: {figures['job_inference_per_s']:.0f} images/s vs raw MONAI forward "
        f"{figures['raw_forward_per_s']:.0f} images/s = {figures['inference_ratio']:.2f}x "
        f"(goal >= {GOALS['inference_ratio']}x)"
    )
    print(f"  the whole job (read, decode, predict, Grad-CAM, SR, capture): {figures['whole_job_per_s']:.0f} images/s")
    print(
        f"  STOW of a {figures['stow_to_sr_images']}-image study to its SR retrievable (routing rule, "
        f"eager job): {figures['stow_to_sr_seconds']:.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--architecture", default="densenet121")
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 24 images, resnet18 at 32 px")
    parser.add_argument("--database-url", default=PG_SERVER)
    args = parser.parse_args()
    if args.quick:
        args.images, args.architecture, args.input_size = 24, "resnet18", 32
    with django_on_throwaway_database(args.database_url, "tessera_bench_analysis") as (var_dir, _):
        figures = analysis_benchmark(
            images=args.images, architecture=args.architecture, input_size=args.input_size, var_dir=var_dir
        )
    print_analysis_figures(figures)


if __name__ == "__main__":
    main()

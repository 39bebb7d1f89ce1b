"""Diagnosis benchmark: classifier training and inference through Tessera vs plain MONAI, in one run.

Run by hand (not in the test suite):

    .venv/bin/python -m benchmarks.medical_diagnosis [--per-class 100] [--epochs 5] [--architecture densenet121]
        [--input-size 64] [--quick] [--with-analysis]

Data: MedNIST (`../shared/data/medical_mednist`, 600 real 64 x 64 images wrapped as DICOM),
stored in a throw-away archive through the archive's own batch store.

1. Training seconds per epoch: a run through `POST /api/v1/medical/training-runs/`'s service
   (`classifier_training_start`, the `ml.train` job run eagerly in this process: labels resolved,
   every file read from storage and preprocessed, training with per-epoch validation AUC, the
   version saved and registered); the per-epoch time is the median gap between the run's
   per-epoch live metrics. Raw: a plain MONAI loop on the same preprocessed arrays — the same
   network from `monai.networks.nets`, MONAI transforms, DataLoader and AdamW, batch size and
   epochs, with the same per-epoch validation forward and ROC AUC. Ratio raw/ours; goal >= 0.8x.
2. Inference images/s: `ml.runtime.predict` on the stored images' inputs (the runtime's batching,
   device and precision) vs the raw MONAI network with the same state dict on the same device,
   batches of the kind's size under `torch.inference_mode()` (half precision on CUDA, as the
   runtime does). Goal >= 0.8x.
3. `--with-analysis` adds the analysis job's images/s and STOW → SR seconds
   (`analysis_figures`, the hook to `benchmarks.medical_analysis` when that module is present).

On a CUDA machine everything runs on the GPU (`ML_DEVICE=auto`), in half precision for inference.
Everything runs on a throw-away PostgreSQL database (`benchmarks.throwaway_database`).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import shutil
import statistics
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.throwaway_database import PG_SERVER, django_on_throwaway_database
from benchmarks.timing import median_of

MEDNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "medical_mednist"
GOALS = {"training_ratio": 0.8, "inference_ratio": 0.8}
MODEL_NAME = "bench-diagnosis"


def _mednist(per_class: int) -> list[tuple[Path, str]]:
    from fixtures.mednist import mednist_pick

    return mednist_pick(MEDNIST, per_class)


def _store(actor: Any, files: list[tuple[Path, str]], folder: Path) -> list[Any]:
    from apps.medical.choices import ReceivedVia
    from apps.medical.services import ReceivedFile, StoreOutcome, instances_store_batch

    folder.mkdir(parents=True, exist_ok=True)
    received = []
    for position, (path, _) in enumerate(files):
        copy = folder / f"{position}.dcm"  # the store moves its input into storage
        shutil.copyfile(path, copy)
        data = copy.read_bytes()
        received.append(ReceivedFile(path=copy, sha256=hashlib.sha256(data).hexdigest(), size=len(data)))
    outcomes = instances_store_batch(actor=actor, files=received, received_via=ReceivedVia.UPLOAD)
    return [outcome.instance for outcome in outcomes if isinstance(outcome, StoreOutcome)]


def _raw_training_seconds_per_epoch(data: Any, params: dict[str, Any]) -> float:
    """A plain MONAI loop on the loader's arrays: median seconds per epoch (train + validation AUC)."""
    import math

    import numpy as np
    import torch
    from monai.data import DataLoader, Dataset
    from monai.transforms import Compose, RandFlipd, RandRotated, RandScaleIntensityd, RandShiftIntensityd
    from sklearn.metrics import roc_auc_score

    from apps.medical.ml import network_build
    from ml.runtime import resolve_device

    device = resolve_device()
    torch.manual_seed(params["seed"])
    network = network_build(params["architecture"], len(data.classes)).to(device)
    augment = Compose(
        [
            RandFlipd(keys="image", prob=0.5, spatial_axis=1),
            RandRotated(keys="image", range_x=math.radians(15), prob=0.5, keep_size=True, padding_mode="zeros"),
            RandScaleIntensityd(keys="image", factors=0.1, prob=0.5),
            RandShiftIntensityd(keys="image", offsets=0.1, prob=0.5),
        ]
    )
    augment.set_random_state(seed=params["seed"])
    items = [{"image": x, "label": int(y)} for x, y in zip(data.train.inputs, data.train.labels, strict=True)]
    loader = DataLoader(
        Dataset(items, transform=augment),
        batch_size=params["batch_size"],
        shuffle=True,
        generator=torch.Generator().manual_seed(params["seed"]),
        drop_last=len(items) > params["batch_size"],
    )
    optimizer = torch.optim.AdamW(network.parameters(), lr=params["learning_rate"])
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=params["epochs"])
    validation = torch.from_numpy(data.validation.inputs)
    seconds = []
    for _ in range(params["epochs"]):
        started = time.perf_counter()
        network.train()
        for batch in loader:
            images = torch.as_tensor(batch["image"]).as_subclass(torch.Tensor).float().to(device)
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(network(images), torch.as_tensor(batch["label"]).to(device))
            loss.backward()
            optimizer.step()
        schedule.step()
        network.eval()
        with torch.no_grad():
            probabilities = np.concatenate(
                [
                    torch.softmax(network(validation[i : i + 64].to(device)), 1).cpu().numpy()
                    for i in range(0, len(validation), 64)
                ]
            )
        roc_auc_score(data.validation.labels, probabilities, multi_class="ovr", labels=list(range(len(data.classes))))
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds[1:] if len(seconds) > 1 else seconds)


def _raw_inference_per_s(version: Any, inputs: Any, batch_size: int) -> float:
    import torch

    from apps.medical.ml import network_build
    from ml.runtime import load_version

    loaded = load_version(version)
    schema = version.input_schema
    network = network_build(schema["architecture"], len(schema["classes"]))
    network.load_state_dict(torch.load(loaded.directory / "model.pt", map_location="cpu", weights_only=True))
    network = network.to(loaded.device).eval()
    if loaded.half:
        network = network.half()
    tensor = torch.from_numpy(inputs)

    def once() -> None:
        with torch.inference_mode():
            for start in range(0, len(tensor), batch_size):
                batch = tensor[start : start + batch_size].to(loaded.device)
                torch.softmax(network(batch.half() if loaded.half else batch).float(), dim=1).cpu()
        if loaded.device.startswith("cuda"):
            torch.cuda.synchronize()

    once()
    return len(tensor) / median_of(once)


def diagnosis_benchmark(
    *, per_class: int, epochs: int, architecture: str, input_size: int, var_dir: Path
) -> dict[str, Any]:
    """Training and inference figures on an already set-up Django (see `main`)."""
    import numpy as np

    from apps.medical.training import classifier_training_start
    from apps.medical.training_data import classifier_training_data
    from core.tenancy.actors import Actor
    from core.tenancy.services import organization_create
    from ml import runtime
    from ml.kinds import TrainingRequest
    from ml.models import TrainingRun
    from ml.selectors import model_version_get

    org = organization_create(slug="bench", name="Bench")[0]
    actor = Actor.system(org)
    files = _mednist(per_class)
    instances = _store(actor, files, var_dir / "incoming")
    labels = [{"uid": i.sop_instance_uid, "label": label} for i, (_, label) in zip(instances, files, strict=True)]
    params = {
        "architecture": architecture,
        "input_size": input_size,
        "epochs": epochs,
        "batch_size": 32,
        "learning_rate": 1e-3,
        "seed": 0,
        "validation_fraction": 0.2,
    }
    started = time.perf_counter()
    run = classifier_training_start(actor=actor, model_name=MODEL_NAME, labels=labels, params=params)
    run = TrainingRun.objects.select_related("job").get(pk=run.pk)
    total_seconds = time.perf_counter() - started
    assert run.job.status == "succeeded", run.job.error
    moments = [datetime.fromisoformat(entry["at"]) for entry in run.live_metrics]
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(moments)]
    ours = statistics.median(gaps) if gaps else total_seconds / epochs
    data = classifier_training_data(
        TrainingRequest(organization=org, data=run.data, params=run.params, scratch=var_dir)
    )
    raw = _raw_training_seconds_per_epoch(data, classifier_params_dict(run.params))

    version = model_version_get(org=org, name=MODEL_NAME, number=1)
    inputs = np.concatenate([data.train.inputs, data.validation.inputs])
    listed = list(inputs)
    runtime.predict(version, listed[:8])  # load + warm up, as a serving process does before its first request
    ours_per_s = len(listed) / median_of(lambda: runtime.predict(version, listed))
    from apps.medical.ml import IMAGE_CLASSIFIER

    raw_per_s = _raw_inference_per_s(version, inputs, IMAGE_CLASSIFIER.max_batch_size or 64)
    return {
        "architecture": architecture,
        "input_size": input_size,
        "device": runtime.device_of(version),
        "half": runtime.load_version(version).half,
        "images": len(listed),
        "epochs": epochs,
        "train_images": len(data.train.labels),
        "total_run_seconds": total_seconds,
        "ours_epoch_seconds": ours,
        "raw_epoch_seconds": raw,
        "training_ratio": raw / ours,
        "ours_inference_per_s": ours_per_s,
        "raw_inference_per_s": raw_per_s,
        "inference_ratio": ours_per_s / raw_per_s,
        "accuracy": version.metrics.get("accuracy"),
    }


def classifier_params_dict(params: dict[str, Any]) -> dict[str, Any]:
    from apps.medical.ml import classifier_params

    return classifier_params(params).as_dict()


def analysis_figures(*, var_dir: Path, quick: bool) -> dict[str, Any] | None:
    """The analysis half (H3's `benchmarks.medical_analysis`): the analysis job's inference images/s
    vs raw MONAI and STOW → SR seconds; None when that module is not there."""
    try:
        from benchmarks import medical_analysis
    except ImportError:
        return None
    images, architecture, size = (24, "resnet18", 32) if quick else (300, "densenet121", 64)
    figures: dict[str, Any] = medical_analysis.analysis_benchmark(
        images=images, architecture=architecture, input_size=size, var_dir=var_dir
    )
    medical_analysis.print_analysis_figures(figures)
    return figures


def print_figures(figures: dict[str, Any]) -> None:
    precision = "half" if figures["half"] else "float32"
    print(
        f"Classifier {figures['architecture']} {figures['input_size']}px on {figures['device']} "
        f"({figures['train_images']} training images, {figures['epochs']} epochs, "
        f"validation accuracy {figures['accuracy']}):"
    )
    print(
        f"  training: {figures['ours_epoch_seconds']:.2f} s/epoch through the training job vs raw MONAI loop "
        f"{figures['raw_epoch_seconds']:.2f} s/epoch = {figures['training_ratio']:.2f}x "
        f"(goal >= {GOALS['training_ratio']}x; whole run with reading and saving {figures['total_run_seconds']:.1f} s)"
    )
    print(
        f"  inference ({precision}): {figures['ours_inference_per_s']:.0f} images/s through ml.runtime.predict vs raw "
        f"MONAI forward {figures['raw_inference_per_s']:.0f} images/s = {figures['inference_ratio']:.2f}x "
        f"(goal >= {GOALS['inference_ratio']}x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--architecture", default="densenet121")
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--with-analysis", action="store_true", help="also the analysis job and STOW -> SR figures")
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: 10 images per class, resnet18 at 32 px, 3 epochs"
    )
    parser.add_argument("--database-url", default=PG_SERVER)
    args = parser.parse_args()
    if args.quick:
        args.per_class, args.epochs, args.architecture, args.input_size = 10, 3, "resnet18", 32
    with django_on_throwaway_database(args.database_url, "tessera_bench_diagnosis") as (var_dir, _):
        figures = diagnosis_benchmark(
            per_class=args.per_class,
            epochs=args.epochs,
            architecture=args.architecture,
            input_size=args.input_size,
            var_dir=var_dir,
        )
        print_figures(figures)
        if args.with_analysis:
            analysis_figures(var_dir=var_dir / "analysis", quick=args.quick)


if __name__ == "__main__":
    main()

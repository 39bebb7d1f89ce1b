"""The `medical.image_classifier` ModelKind: MONAI 2-D image classifiers in the registry.

The kind only: how a classifier trains (on images the medical loader already materialised,
`apps.medical.training_data.classifier_training_data`), saves, loads, predicts, explains
(Grad-CAM) and imports. It never touches the ORM or storage; `ml.runtime` owns the device, the
precision, the inference context and the cache.

- Networks: MONAI's DenseNet121 (the default), DenseNet169, ResNet18 and ResNet34, 2-D, one input
  channel, trained from scratch (nothing downloads weights; pretrained weights enter through
  the registry's import).
- Preprocessing (`apps.medical.imaging.Preprocessing`) is recorded in the version's
  `input_schema` and in the artifact's `config.json`; inputs are (1, S, S) float32 arrays made
  by `imaging.dataset_inputs`.
- Artifact: `model.pt`, the network's state dict written by `torch.save(state_dict)` and read
  back with `torch.load(..., weights_only=True)` (no code can run on load), plus `config.json`
  (architecture, class names in output order, preprocessing). No pickle of any object.
- Training: AdamW on cross-entropy, MONAI augmentation (flips, rotations up to ±15°, intensity
  scale and shift ±10 %), the seed fixing the initial weights, the batch order and the
  augmentation (bit-for-bit repeatable on CPU). The version is the last epoch's weights: picking
  the best epoch on the validation set would make its metrics optimistic.
- Fine-tuning: the parent's weights are the starting point; its classes (in order) and
  architecture must be the run's, else `ValidationFailed`.
- Import: a zip holding `model.pt` (a state dict) and `config.json` (`{"architecture",
  "classes", "preprocessing": {"input_size", "window_center", "window_width", "normalise"}}`),
  because a bare state dict does not say what its outputs mean. Refused: a `model.pt` that is
  not a plain state dict (a pickle with code, garbage), keys or shapes that do not match the
  declared architecture and class count, a malformed config.
"""

from __future__ import annotations

import copy
import io
import json
import math
import threading
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from apps.medical.classifier_metrics import classification_metrics, validation_auc
from apps.medical.imaging import MIN_INPUT_SIZE, Preprocessing
from core.errors import ValidationFailed
from ml.kinds import ArtifactRejected, ImportedArtifact, ModelKind, Reporter, Trained, register_kind

if TYPE_CHECKING:
    from apps.medical.training_data import ClassifierTrainingData

MODEL_KIND = "medical.image_classifier"
WEIGHTS_FILE = "model.pt"
CONFIG_FILE = "config.json"
CONFIG_FORMAT = 1
DEFAULT_ARCHITECTURE = "densenet121"
# The layer(s) whose activations Grad-CAM weighs, recorded per version (`gradcam_layer` in its
# config and input schema; "a+b" means the geometric mean of both layers' maps). Versions trained
# before the layer was recorded used the last feature map before global pooling
# (`LEGACY_GRADCAM_LAYERS`) and keep it. At the input sizes these classifiers train at, that map
# is 2x2 to 4x4 cells (at 64 px: ResNet 4x4, DenseNet 2x2), too coarse to point at a nodule a few
# pixels across. New versions (`GRADCAM_LAYERS`) combine the two blocks before the last: the
# earlier one's resolution with the later one's class-specificity. Measured on generated chests
# (a resnet18 trained like the demo's, 64 px, 20 unseen positives; a hit is a peak within the
# nodule's radius plus 8 px): `layer2+layer3` 80 %, `layer2` 55 %, `layer3` 60 %; the demo's
# own classifier: 65 % with `layer2+layer3` (60 % with `layer2`).
# DenseNet gets the analogous blocks (not measured on the demo).
LEGACY_GRADCAM_LAYERS = {
    "densenet121": "class_layers.relu",
    "densenet169": "class_layers.relu",
    "resnet18": "layer4",
    "resnet34": "layer4",
}
GRADCAM_LAYERS = {
    "densenet121": "features.denseblock2+features.denseblock3",
    "densenet169": "features.denseblock2+features.denseblock3",
    "resnet18": "layer2+layer3",
    "resnet34": "layer2+layer3",
}
# the single layers a version's config may name (alone or joined by "+")
GRADCAM_LAYER_CHOICES = {
    "densenet121": ("features.denseblock2", "features.denseblock3", "features.denseblock4", "class_layers.relu"),
    "densenet169": ("features.denseblock2", "features.denseblock3", "features.denseblock4", "class_layers.relu"),
    "resnet18": ("layer2", "layer3", "layer4"),
    "resnet34": ("layer2", "layer3", "layer4"),
}
ARCHITECTURES = tuple(GRADCAM_LAYERS)
MAX_EPOCHS = 200
MAX_BATCH_SIZE = 256
MAX_TRAINING_INPUT_SIZE = 256
MAX_CLASSES = 50
MAX_IMPORT_BYTES = 1 << 30
ROTATION_RADIANS = math.radians(15)


@dataclass(frozen=True)
class ClassifierParams:
    """A training run's validated parameters (see `classifier_params`)."""

    architecture: str = DEFAULT_ARCHITECTURE
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    input_size: int = 64
    window_center: float | None = None
    window_width: float | None = None
    normalise: str = "minmax"
    validation_fraction: float = 0.2
    seed: int = 0
    augment: bool = True

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing(
            input_size=self.input_size,
            window_center=self.window_center,
            window_width=self.window_width,
            normalise=self.normalise,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "architecture": self.architecture,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "weight_decay": self.weight_decay,
            "input_size": self.input_size,
            "window_center": self.window_center,
            "window_width": self.window_width,
            "normalise": self.normalise,
            "validation_fraction": self.validation_fraction,
            "seed": self.seed,
            "augment": self.augment,
        }


def classifier_params(params: Mapping[str, Any]) -> ClassifierParams:
    """Validate a run's parameters; `ValidationFailed` naming every bad field.

    Limits: epochs 1..200, batch_size 1..256, learning_rate in (0, 1], input_size 16..256,
    validation_fraction 0.05..0.5, a known architecture, a window given as both centre and width.
    """
    defaults = ClassifierParams()
    errors: dict[str, list[str]] = {}
    known = set(defaults.as_dict()) | {"base_version_id"}
    for name in sorted(set(params) - known):
        errors[name] = ["Unknown parameter."]

    def number(name: str, cast: type, low: float, high: float, *, low_open: bool = False) -> Any:
        value = params.get(name, getattr(defaults, name))
        if isinstance(value, bool):
            errors[name] = ["Must be a number."]
            return getattr(defaults, name)
        try:
            converted = cast(value)
        except (TypeError, ValueError):
            errors[name] = ["Must be a number."]
            return getattr(defaults, name)
        if cast is int and float(value) != converted:
            errors[name] = ["Must be an integer."]
        elif not math.isfinite(converted) or converted > high or converted < low or (low_open and converted == low):
            errors[name] = [f"Must be {'above' if low_open else 'at least'} {low} and at most {high}."]
        return converted

    epochs = number("epochs", int, 1, MAX_EPOCHS)
    batch_size = number("batch_size", int, 1, MAX_BATCH_SIZE)
    learning_rate = number("learning_rate", float, 0.0, 1.0, low_open=True)
    weight_decay = number("weight_decay", float, 0.0, 1.0)
    input_size = number("input_size", int, MIN_INPUT_SIZE, MAX_TRAINING_INPUT_SIZE)
    validation_fraction = number("validation_fraction", float, 0.05, 0.5)
    seed = number("seed", int, 0, 2**31 - 1)
    architecture = params.get("architecture") or DEFAULT_ARCHITECTURE
    if architecture not in ARCHITECTURES:
        errors["architecture"] = [f"Must be one of {', '.join(ARCHITECTURES)}."]
    center, width = params.get("window_center"), params.get("window_width")
    window: list[float | None] = [None, None]
    if (center is None) != (width is None):
        errors["window_width" if center is not None else "window_center"] = [
            "Give window_center and window_width together."
        ]
    elif center is not None:
        window = [number("window_center", float, -1e6, 1e6), number("window_width", float, 0.0, 1e6, low_open=True)]
    normalise = params.get("normalise", "minmax")
    if normalise not in ("minmax", "zscore"):
        errors["normalise"] = ["Must be minmax or zscore."]
    augment = params.get("augment", True)
    if not isinstance(augment, bool):
        errors["augment"] = ["Must be true or false."]
    if errors:
        raise ValidationFailed("Invalid training parameters.", fields=errors)
    return ClassifierParams(
        architecture=str(architecture),
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        input_size=input_size,
        window_center=window[0],
        window_width=window[1],
        normalise=str(normalise),
        validation_fraction=validation_fraction,
        seed=seed,
        augment=bool(augment),
    )


def network_build(architecture: str, n_classes: int) -> Any:
    """A freshly initialised MONAI network (2-D, one input channel, `n_classes` logits)."""
    from monai.networks import nets

    if architecture == "densenet121":
        return nets.DenseNet121(spatial_dims=2, in_channels=1, out_channels=n_classes)
    if architecture == "densenet169":
        return nets.DenseNet169(spatial_dims=2, in_channels=1, out_channels=n_classes)
    if architecture == "resnet18":
        return nets.resnet18(spatial_dims=2, n_input_channels=1, num_classes=n_classes)
    if architecture == "resnet34":
        return nets.resnet34(spatial_dims=2, n_input_channels=1, num_classes=n_classes)
    raise ValueError(f"Unknown architecture {architecture!r}; known: {', '.join(ARCHITECTURES)}.")


def training_augmentation(seed: int) -> Any:
    """The MONAI training transforms on `{"image": (1, S, S)}` items, seeded.

    Left-right flips, rotations up to ±15° (kept at the input size), intensity scaling and
    shifting by up to ±10 %, each applied with probability 0.5.
    """
    from monai.transforms import Compose, RandFlipd, RandRotated, RandScaleIntensityd, RandShiftIntensityd

    transforms = Compose(
        [
            RandFlipd(keys="image", prob=0.5, spatial_axis=1),
            RandRotated(keys="image", range_x=ROTATION_RADIANS, prob=0.5, keep_size=True, padding_mode="zeros"),
            RandScaleIntensityd(keys="image", factors=0.1, prob=0.5),
            RandShiftIntensityd(keys="image", offsets=0.1, prob=0.5),
        ]
    )
    transforms.set_random_state(seed=seed)
    return transforms


@dataclass
class LoadedClassifier:
    """A classifier loaded in this process: the network (eval mode) and what it was trained on."""

    network: Any
    architecture: str
    classes: list[str]
    preprocessing: Preprocessing
    device: str
    half: bool
    gradcam_layer: str = ""  # empty: the architecture's legacy layer
    # Grad-CAM needs hooks and gradients; it works on its own float32 copy of the network, built
    # on first use, so serving predictions never run through the hooks.
    explainer: Any = None
    explain_lock: threading.Lock = field(default_factory=threading.Lock)


def _config(
    architecture: str, classes: Sequence[str], preprocessing: Preprocessing, gradcam_layer: str
) -> dict[str, Any]:
    return {
        "format": CONFIG_FORMAT,
        "architecture": architecture,
        "classes": list(classes),
        "preprocessing": preprocessing.to_json(),
        "gradcam_layer": gradcam_layer,
        "spatial_dims": 2,
        "in_channels": 1,
    }


def input_schema(
    architecture: str, classes: Sequence[str], preprocessing: Preprocessing, gradcam_layer: str
) -> dict[str, Any]:
    """What a version records about its inputs and outputs (the analysis job reads it)."""
    return {
        "classes": list(classes),
        "preprocessing": preprocessing.to_json(),
        "architecture": architecture,
        "gradcam_layer": gradcam_layer,
        "spatial_dims": 2,
        "in_channels": 1,
    }


def gradcam_layer_parse(architecture: str, data: Mapping[str, Any]) -> str:
    """The Grad-CAM layer a config names; the legacy layer when it names none (older versions)."""
    layer = data.get("gradcam_layer")
    if layer is None:
        return LEGACY_GRADCAM_LAYERS[architecture]
    parts = layer.split("+") if isinstance(layer, str) else []
    if not parts or len(set(parts)) != len(parts) or not set(parts) <= set(GRADCAM_LAYER_CHOICES[architecture]):
        raise ValueError(
            f"config.json: gradcam_layer must be one or more of {', '.join(GRADCAM_LAYER_CHOICES[architecture])} "
            f"(joined by +) for {architecture}."
        )
    return str(layer)


def gradcam_normalise(heat: Any) -> Any:
    """Min-max scale each Grad-CAM map to [0, 1], hottest = 1 (a constant map becomes 0).

    MONAI's default CAM post-processing (`monai.visualize.visualizer.default_normalizer`) maps
    (min, max) to (1, 0) — it flips the map, as occlusion sensitivity wants — so with it the
    overlay lit up where the network did *not* look.
    """
    import torch

    flat = heat.reshape(heat.shape[0], -1)
    low = flat.min(dim=1).values.view(-1, *([1] * (heat.dim() - 1)))
    high = flat.max(dim=1).values.view(-1, *([1] * (heat.dim() - 1)))
    span = high - low
    return torch.where(span > 1e-12, (heat - low) / span.clamp_min(1e-12), torch.zeros_like(heat))


def _combined_cam(cam: Any, batch: Any, target: int) -> Any:
    """The CAM of each of the explainer's target layers (each at the input size, in [0, 1]),
    combined by their geometric mean and scaled back to a hottest value of 1: a region is hot only
    where every layer finds it relevant."""
    import torch

    count = len(cam.nn_module.target_layers)
    if count == 1:
        return cam(batch, class_idx=target)
    product = torch.ones(())
    for index in range(count):
        product = product * cam(batch, class_idx=target, layer_idx=index).clamp_min(0.0)
    return gradcam_normalise(product ** (1.0 / count))


def config_parse(data: object) -> tuple[str, list[str], Preprocessing]:
    """(architecture, classes, preprocessing) of a `config.json`; ValueError when malformed."""
    if not isinstance(data, Mapping):
        raise ValueError("config.json must be a JSON object.")
    architecture = data.get("architecture")
    if architecture not in ARCHITECTURES:
        raise ValueError(f"config.json: architecture must be one of {', '.join(ARCHITECTURES)}.")
    classes = data.get("classes")
    if (
        not isinstance(classes, list)
        or not 2 <= len(classes) <= MAX_CLASSES
        or not all(isinstance(name, str) and name.strip() and len(name) <= 100 for name in classes)
        or len(set(classes)) != len(classes)
    ):
        raise ValueError(f"config.json: classes must be 2 to {MAX_CLASSES} distinct non-empty names.")
    preprocessing = data.get("preprocessing")
    if not isinstance(preprocessing, Mapping):
        raise ValueError("config.json: preprocessing must be an object with input_size (and optionally a window).")
    try:
        parsed = Preprocessing.from_json(preprocessing)
    except ValueError as exc:
        raise ValueError(f"config.json: {exc}") from exc
    return str(architecture), [str(name) for name in classes], parsed


def _state_dict_read(source: Any) -> dict[str, Any]:
    """A state dict read with `weights_only=True`; ValueError when it is anything else."""
    import pickle

    import torch

    try:
        state = torch.load(source, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError, TypeError, OSError) as exc:
        raise ValueError(
            f"model.pt is not a plain PyTorch state dict loadable with weights_only=True ({exc})."
        ) from exc
    if (
        not isinstance(state, Mapping)
        or not state
        or not all(isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in state.items())
    ):
        raise ValueError("model.pt must hold a state dict: a mapping of parameter names to tensors.")
    return dict(state)


def _network_with_weights(architecture: str, n_classes: int, state: Mapping[str, Any]) -> Any:
    network = network_build(architecture, n_classes)
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        # torch's message lists the missing/unexpected keys and the shape mismatches
        raise ValueError(f"The weights do not fit {architecture} with {n_classes} classes: {exc}") from exc
    return network


def _stack(inputs: Sequence[np.ndarray], size: int) -> np.ndarray:
    array = np.stack([np.asarray(item, dtype=np.float32) for item in inputs])
    if array.ndim != 4 or array.shape[1:] != (1, size, size):
        raise ValueError(
            f"Inputs must be (1, {size}, {size}) float32 arrays (imaging.dataset_inputs); got {array.shape[1:]}."
        )
    return array


class ImageClassifier(ModelKind[LoadedClassifier, np.ndarray, list[float]]):
    """A MONAI 2-D image classifier (softmax over the version's classes), with Grad-CAM."""

    name = MODEL_KIND
    artifact_format = "torch-state-dict"
    uses_torch = True
    supports_half = True
    max_batch_size = 64
    per_input_options = ("classes",)  # explain: the class each input's Grad-CAM map is for
    import_filename = "classifier.zip"

    # --- Training ---------------------------------------------------------------------------

    def train(
        self,
        *,
        data: ClassifierTrainingData,
        params: dict[str, Any],
        report: Reporter,
        parent: LoadedClassifier | None = None,
    ) -> Trained:
        """Train from scratch, or fine-tune `parent`, on the materialised images.

        Args:
            data: the loader's images (already preprocessed and split by patient).
            params: see `classifier_params`.
            report: called after every epoch with `epoch`, `loss`, `val_auc`, `val_accuracy`.
            parent: the loaded version to start from (fine-tuning), or None.

        Returns:
            Trained with the CPU state dict as `model`, the validation metrics, the input
            schema, the data fingerprint and the model card.
        """
        import torch

        from ml.runtime import resolve_device

        resolved = classifier_params(params)
        classes = list(data.classes)
        architecture = resolved.architecture
        if parent is not None:
            if list(parent.classes) != classes:
                raise ValidationFailed(
                    "Fine-tuning keeps the parent's classes, in order.",
                    fields={"classes": [f"The parent version's classes are {parent.classes}."]},
                )
            architecture = parent.architecture
        device = resolve_device()
        with torch.random.fork_rng(devices=[device] if device.startswith("cuda") else []):
            torch.manual_seed(resolved.seed)
            network = network_build(architecture, len(classes))
            if parent is not None:
                network.load_state_dict({k: v.detach().float().cpu() for k, v in parent.network.state_dict().items()})
            network = network.to(device)
            history = self._fit(network, data=data, params=resolved, device=device, report=report)
        probabilities = self._probabilities(network, data.validation.inputs, device=device)
        metrics = classification_metrics(probabilities, data.validation.labels, classes)
        metrics["split"] = dict(data.split)
        metrics["epochs"] = history
        state = {key: value.detach().cpu().float() for key, value in network.state_dict().items()}
        recorded = {**resolved.as_dict(), "architecture": architecture, "device": device}
        # a fine-tuned version keeps its parent's explanation layer, so its maps compare with the parent's
        layer = parent.gradcam_layer if parent is not None and parent.gradcam_layer else GRADCAM_LAYERS[architecture]
        if params.get("base_version_id") is not None:
            recorded["base_version_id"] = params["base_version_id"]
        return Trained(
            model={"state_dict": state, "config": _config(architecture, classes, data.preprocessing, layer)},
            metrics=metrics,
            params=recorded,
            input_schema=input_schema(architecture, classes, data.preprocessing, layer),
            data_fingerprint=data.fingerprint,
            model_card=classifier_model_card(
                architecture=architecture,
                classes=classes,
                summary=data.summary,
                split=data.split,
                fine_tuned=parent is not None,
            ),
        )

    def _fit(
        self,
        network: Any,
        *,
        data: ClassifierTrainingData,
        params: ClassifierParams,
        device: str,
        report: Reporter,
    ) -> list[dict[str, Any]]:
        import torch
        from monai.data import DataLoader, Dataset

        train_items = [
            {"image": image, "label": int(label)}
            for image, label in zip(data.train.inputs, data.train.labels, strict=True)
        ]
        dataset = Dataset(data=train_items, transform=training_augmentation(params.seed) if params.augment else None)
        generator = torch.Generator().manual_seed(params.seed)
        # BatchNorm cannot train on a last batch of one image; drop a ragged tail when there is more than one batch
        loader = DataLoader(
            dataset,
            batch_size=params.batch_size,
            shuffle=True,
            generator=generator,
            num_workers=0,
            drop_last=len(train_items) > params.batch_size,
        )
        optimizer = torch.optim.AdamW(network.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay)
        # Cosine decay to zero over the run: the last epoch's weights (what the version keeps) are
        # then those of a settled network, not of a large step that happened to come last. With
        # a constant rate, small hospital datasets and BatchNorm, validation accuracy swings from
        # epoch to epoch (0.97 then 0.5 on the demo's radiographs) while the loss keeps falling.
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=params.epochs)
        loss_function = torch.nn.CrossEntropyLoss()
        history = []
        for epoch in range(params.epochs):
            network.train()
            total, seen = 0.0, 0
            for batch in loader:
                # plain tensors: MONAI's MetaTensor would route every layer through __torch_function__
                images = torch.as_tensor(batch["image"]).as_subclass(torch.Tensor).float().to(device)
                labels = torch.as_tensor(batch["label"]).long().to(device)
                optimizer.zero_grad(set_to_none=True)
                loss = loss_function(network(images), labels)
                loss.backward()
                optimizer.step()
                total += float(loss.item()) * len(labels)
                seen += len(labels)
            schedule.step()
            probabilities = self._probabilities(network, data.validation.inputs, device=device)
            entry = {
                "epoch": epoch + 1,
                "loss": round(total / max(1, seen), 6),
                "val_auc": validation_auc(probabilities, data.validation.labels, len(data.classes)),
                "val_accuracy": round(float((probabilities.argmax(axis=1) == data.validation.labels).mean()), 6)
                if len(data.validation.labels)
                else None,
            }
            history.append(entry)
            report(
                progress=(epoch + 1) / params.epochs,
                message=f"Epoch {epoch + 1}/{params.epochs}: loss {entry['loss']}, validation AUC {entry['val_auc']}",
                metrics=entry,
            )
        network.eval()
        return history

    def _probabilities(self, network: Any, inputs: np.ndarray, *, device: str, batch_size: int = 64) -> np.ndarray:
        import torch

        network.eval()
        parts = []
        with torch.no_grad():
            for start in range(0, len(inputs), batch_size):
                batch = torch.as_tensor(np.asarray(inputs[start : start + batch_size], dtype=np.float32)).to(device)
                parts.append(torch.softmax(network(batch).float(), dim=1).cpu().numpy())
        return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)

    def save(self, trained: Trained, directory: Path) -> None:
        import torch

        torch.save(trained.model["state_dict"], directory / WEIGHTS_FILE)
        (directory / CONFIG_FILE).write_text(json.dumps(trained.model["config"], indent=2, sort_keys=True))

    # --- Serving ----------------------------------------------------------------------------

    def load(self, directory: Path, *, device: str, half: bool = False) -> LoadedClassifier:
        config = json.loads((directory / CONFIG_FILE).read_text())
        architecture, classes, preprocessing = config_parse(config)
        gradcam_layer = gradcam_layer_parse(architecture, config)
        state = _state_dict_read(directory / WEIGHTS_FILE)
        network = _network_with_weights(architecture, len(classes), state).to(device)
        network.eval()
        if half:
            network.half()
        return LoadedClassifier(
            network=network,
            architecture=architecture,
            classes=classes,
            preprocessing=preprocessing,
            device=device,
            half=half,
            gradcam_layer=gradcam_layer,
        )

    def warm_up(self, loaded: LoadedClassifier) -> None:
        """One forward pass so the first request does not pay for allocation (and cuDNN's choice)."""
        size = loaded.preprocessing.input_size
        self.predict(loaded, [np.zeros((1, size, size), dtype=np.float32)])

    def predict(self, loaded: LoadedClassifier, inputs: Sequence[np.ndarray], **options: Any) -> list[list[float]]:
        """Softmax probabilities in class order, one list per (1, S, S) input."""
        import torch

        if not len(inputs):
            return []
        array = _stack(inputs, loaded.preprocessing.input_size)
        batch = torch.from_numpy(array).to(loaded.device)
        if loaded.half:
            batch = batch.half()
        logits = loaded.network(batch)
        return torch.softmax(logits.float(), dim=1).cpu().numpy().astype(np.float64).tolist()

    def explain(
        self,
        loaded: LoadedClassifier,
        inputs: Sequence[np.ndarray],
        classes: Sequence[int] | None = None,
        **options: Any,
    ) -> list[np.ndarray]:
        """Grad-CAM heatmaps (MONAI `GradCAM`), (S, S) float32 in [0, 1], one per input.

        Args:
            classes: the class index to explain per input; default the predicted class.

        The runtime calls kinds inside `torch.inference_mode()`; Grad-CAM needs autograd, so it
        runs in `inference_mode(False)` with gradients enabled, on its own float32 copy of the
        network (its hooks never touch the serving network) under a lock (the hooks keep the
        activations of one call at a time).
        """
        import torch
        from monai.visualize import GradCAM

        if not len(inputs):
            return []
        array = _stack(inputs, loaded.preprocessing.input_size)
        if classes is not None and len(classes) != len(array):
            raise ValueError(f"Give one class index per input ({len(classes)} for {len(array)}).")
        with torch.inference_mode(False), torch.enable_grad(), loaded.explain_lock:
            if loaded.explainer is None:
                network = copy.deepcopy(loaded.network).float().eval()
                layers = (loaded.gradcam_layer or LEGACY_GRADCAM_LAYERS[loaded.architecture]).split("+")
                loaded.explainer = GradCAM(
                    nn_module=network,
                    target_layers=layers,  # type: ignore[arg-type]  # MONAI takes several (ensure_tuple); its hint says str
                    postprocessing=gradcam_normalise,
                )
            cam = loaded.explainer
            batch = torch.from_numpy(array.copy()).to(loaded.device)
            if classes is None:
                with torch.no_grad():
                    targets = cam.nn_module.model(batch).argmax(dim=1).cpu().tolist()
            else:
                targets = [int(index) for index in classes]
            for index in targets:
                if not 0 <= index < len(loaded.classes):
                    raise ValueError(f"Class index {index} is outside 0..{len(loaded.classes) - 1}.")
            heatmaps: list[np.ndarray | None] = [None] * len(array)
            for target in sorted(set(targets)):
                rows = [row for row, wanted in enumerate(targets) if wanted == target]
                maps = _combined_cam(cam, batch[rows], target).detach().float().cpu().numpy()
                for row, heat in zip(rows, maps, strict=True):
                    heat = np.nan_to_num(heat[0].astype(np.float32), nan=0.0)
                    heatmaps[row] = np.clip(heat, 0.0, 1.0)
        return [heat for heat in heatmaps if heat is not None]

    def preprocessor(self, loaded: LoadedClassifier) -> Preprocessing:
        return loaded.preprocessing

    # --- Import -----------------------------------------------------------------------------

    def import_artifact(self, source: Path, directory: Path) -> ImportedArtifact:
        """Validate an uploaded zip of `model.pt` (state dict) + `config.json`; write the artifact.

        The weights are loaded with `weights_only=True`, loaded strictly into the declared
        architecture, and written back out with our own `torch.save(state_dict)`, so the
        artifact holds exactly the tensors the network uses.
        """
        import torch

        if source.stat().st_size == 0:
            raise ArtifactRejected("The file is empty.")
        if not zipfile.is_zipfile(source):
            raise ArtifactRejected("Expected a zip of model.pt (a state dict) and config.json.")
        try:
            with zipfile.ZipFile(source) as archive:
                names = {info.filename: info for info in archive.infolist()}
                if WEIGHTS_FILE not in names or CONFIG_FILE not in names:
                    raise ArtifactRejected(
                        "The zip must hold model.pt (a state dict) and config.json at its top level "
                        "(a bare state dict does not say what its classes and preprocessing are)."
                    )
                if sum(names[name].file_size for name in (WEIGHTS_FILE, CONFIG_FILE)) > MAX_IMPORT_BYTES:
                    raise ArtifactRejected("The weights are larger than the import limit.")
                config_bytes = archive.read(CONFIG_FILE)
                weights_bytes = archive.read(WEIGHTS_FILE)
        except (zipfile.BadZipFile, OSError, RuntimeError) as exc:  # RuntimeError: encrypted members
            raise ArtifactRejected(f"The zip could not be read: {exc}") from exc
        try:
            config = json.loads(config_bytes)
            architecture, classes, preprocessing = config_parse(config)
            # an imported config without a layer gets today's default, not the legacy one
            gradcam_layer = gradcam_layer_parse(architecture, {"gradcam_layer": GRADCAM_LAYERS[architecture], **config})
        except (ValueError, UnicodeDecodeError) as exc:
            raise ArtifactRejected(f"Invalid config.json: {exc}") from exc
        try:
            state = _state_dict_read(io.BytesIO(weights_bytes))
            network = _network_with_weights(architecture, len(classes), state)
        except ValueError as exc:
            raise ArtifactRejected(str(exc)) from exc
        torch.save({key: value.float() for key, value in network.state_dict().items()}, directory / WEIGHTS_FILE)
        (directory / CONFIG_FILE).write_text(
            json.dumps(_config(architecture, classes, preprocessing, gradcam_layer), indent=2, sort_keys=True)
        )
        parameters = sum(int(value.numel()) for value in network.parameters())
        return ImportedArtifact(
            params={"architecture": architecture, "input_size": preprocessing.input_size},
            input_schema=input_schema(architecture, classes, preprocessing, gradcam_layer),
            model_card=classifier_model_card(
                architecture=architecture, classes=classes, summary=None, split=None, imported_parameters=parameters
            ),
        )


def classifier_model_card(
    *,
    architecture: str,
    classes: Sequence[str],
    summary: Mapping[str, Any] | None,
    split: Mapping[str, Any] | None,
    fine_tuned: bool = False,
    imported_parameters: int | None = None,
) -> dict[str, Any]:
    """The model card of a classifier version: intended use, training data, limits."""
    card: dict[str, Any] = {
        "intended_use": (
            "Decision support for trained clinicians: suggests one of "
            f"{', '.join(classes)} for a 2-D grayscale DICOM image (each frame of a multi-frame "
            "instance on its own) and shows where the network looked (Grad-CAM). Every suggestion "
            "is reviewed and signed by a clinician; it is not a diagnosis on its own."
        ),
        "architecture": f"MONAI {architecture}, 2-D, 1 input channel, {len(classes)} outputs (softmax)",
        "limits": [
            "Trained only on this organization's labelled images; performance on other scanners, "
            "sites, protocols or populations is unknown until validated there.",
            "Sees one frame at a time at the recorded input size, windowed as recorded: no 3-D context, "
            "no prior studies, no clinical information.",
            "Colour images and instances without pixel data are not analysed.",
            "Validation metrics come from a small held-out set of patients; they are estimates with "
            "wide uncertainty, and calibration may drift on new data.",
            "Knows only its classes: an image of anything else is still assigned to one of them.",
        ],
    }
    if imported_parameters is not None:
        card["training_data"] = {"source": "imported: trained outside Tessera; its training data is not known here"}
        card["parameters"] = imported_parameters
    else:
        card["training_data"] = {**dict(summary or {}), "split": dict(split or {})}
        card["fine_tuned_from_parent"] = fine_tuned
    return card


IMAGE_CLASSIFIER = register_kind(ImageClassifier())

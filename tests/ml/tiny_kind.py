"""A tiny but real model kind for the registry's tests.

Logistic regression in torch on two synthetic 2-D Gaussian blobs (class 0 around (-1, -1),
class 1 around (1, 1)): it trains in a few hundred SGD steps (milliseconds), is saved as a
torch state dict and loaded with `weights_only=True`, like the production torch kinds.
"""

from __future__ import annotations

import hashlib
import io
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ml.kinds import ArtifactRejected, ImportedArtifact, ModelKind, ReportFn, Trained

TINY_KIND = "tests.tiny_logreg"
WEIGHTS_FILE = "weights.pt"
INPUT_SCHEMA = {
    "type": "array",
    "items": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
    "description": "Points (x, y).",
}


def make_blobs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` points, half of each class, reproducible from `seed`."""
    generator = torch.Generator().manual_seed(seed)
    labels = (torch.arange(n) % 2).float()
    centers = labels.unsqueeze(1) * 2.0 - 1.0  # -1 for class 0, +1 for class 1
    points = centers + 0.7 * torch.randn(n, 2, generator=generator)
    return points, labels


def state_dict_bytes(weight: tuple[float, float], bias: float) -> bytes:
    """A valid artifact of this kind, as an uploaded file would carry it."""
    buffer = io.BytesIO()
    torch.save({"weight": torch.tensor([list(weight)]), "bias": torch.tensor([bias])}, buffer)
    return buffer.getvalue()


class TinyLogReg(ModelKind):
    """Binary classifier of 2-D points; `predict` returns P(class 1) per point."""

    name = TINY_KIND
    artifact_format = "torch-state-dict"
    uses_torch = True
    import_filename = WEIGHTS_FILE

    def train(self, *, data: Any, params: dict[str, Any], report: ReportFn, parent: Any = None) -> Trained:
        n, seed = int(data.get("n", 200)), int(data.get("seed", 0))
        epochs, steps, lr = (
            int(params.get("epochs", 4)),
            int(params.get("steps_per_epoch", 50)),
            float(params.get("lr", 0.5)),
        )
        points, labels = make_blobs(n, seed)
        torch.manual_seed(seed)
        model = torch.nn.Linear(2, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        loss_fn = torch.nn.BCEWithLogitsLoss()
        loss = accuracy = 0.0
        for epoch in range(1, epochs + 1):
            for _ in range(steps):
                optimizer.zero_grad()
                batch_loss = loss_fn(model(points).squeeze(1), labels)
                batch_loss.backward()
                optimizer.step()
            loss = float(batch_loss.item())
            with torch.no_grad():
                accuracy = float(((model(points).squeeze(1) > 0).float() == labels).float().mean().item())
            report(
                progress=epoch / epochs,
                message=f"Epoch {epoch}/{epochs}",
                metrics={"epoch": epoch, "loss": loss, "accuracy": accuracy},
            )
        fingerprint = hashlib.sha256(points.numpy().tobytes() + labels.numpy().tobytes()).hexdigest()
        return Trained(
            model=model,
            metrics={"loss": loss, "accuracy": accuracy},
            params={"epochs": epochs, "steps_per_epoch": steps, "lr": lr},
            input_schema=INPUT_SCHEMA,
            data_fingerprint=fingerprint,
            model_card={"intended_use": "Registry tests only.", "training_data": f"{n} synthetic points, seed {seed}"},
        )

    def save(self, trained: Trained, directory: Path) -> None:
        torch.save(trained.model.state_dict(), directory / WEIGHTS_FILE)

    def load(self, directory: Path, *, device: str, half: bool = False) -> torch.nn.Linear:
        state = torch.load(directory / WEIGHTS_FILE, map_location=device, weights_only=True)
        model = torch.nn.Linear(2, 1)
        model.load_state_dict(state)
        return model.to(device).eval()

    def predict(self, loaded: torch.nn.Linear, inputs: Sequence[Any], **options: Any) -> list[Any]:
        device = next(loaded.parameters()).device
        points = torch.tensor([[float(x), float(y)] for x, y in inputs], dtype=torch.float32, device=device)
        probabilities: list[Any] = torch.sigmoid(loaded(points)).squeeze(1).tolist()
        return probabilities

    def import_artifact(self, source: Path, directory: Path) -> ImportedArtifact:
        try:
            state = torch.load(source, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for a file that is not a state dict
            raise ArtifactRejected(f"Not a torch state dict readable with weights_only=True: {exc}") from exc
        shapes = {key: tuple(value.shape) for key, value in state.items()} if isinstance(state, dict) else None
        if shapes != {"weight": (1, 2), "bias": (1,)}:
            raise ArtifactRejected(f"Expected weight (1, 2) and bias (1,); got {shapes}.")
        shutil.copyfile(source, directory / WEIGHTS_FILE)
        return ImportedArtifact(input_schema=INPUT_SCHEMA, model_card={"intended_use": "Registry tests only."})

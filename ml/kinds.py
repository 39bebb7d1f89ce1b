"""The ModelKind interface and its registry.

A domain app describes a model family once, in its `ml.py`, and registers it:

    class CreditXGBoost(ModelKind):
        name = "finance.credit_xgboost"
        artifact_format = "xgboost-ubj"
        def train(self, *, data, params, report): ...
        def save(self, trained, directory): ...
        def load(self, directory, *, device): ...
        def predict(self, loaded, inputs, **options): ...

    register_kind(CreditXGBoost())

Everything else (versions, aliases, artifacts with sha256 manifests, the per-process cache,
device selection, training jobs) is done once in `ml/` for every kind.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ReportFn = Callable[..., None]
"""`report(progress=0..1, message="...", metrics={...})`: progress of a training run."""


@dataclass
class Trained:
    """What `ModelKind.train` returns: the fitted model plus what the version records about it."""

    model: Any
    metrics: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    input_schema: dict[str, Any] = field(default_factory=dict)
    data_fingerprint: str = ""
    model_card: dict[str, Any] = field(default_factory=dict)


@dataclass
class ImportedArtifact:
    """What `ModelKind.import_artifact` learned from a validated uploaded artifact."""

    metrics: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    input_schema: dict[str, Any] = field(default_factory=dict)
    model_card: dict[str, Any] = field(default_factory=dict)


class ArtifactRejected(Exception):
    """An uploaded artifact is not a valid model of this kind (maps to a 400)."""


class ModelKind:
    """Base class of every model kind (the interface of ARCHITECTURE.md, "The ML layer").

    Attributes:
        name: dotted registry name, `<domain>.<family>`.
        artifact_format: what `save` writes, e.g. "xgboost-ubj", "torch-state-dict".
        loads_code: True when loading the artifact can execute code (pickle-based formats such
            as ultralytics `.pt`). Such artifacts are imported only by org admins or keys with
            the `ml` scope, are hashed and audited, and must be validated out of process.
        uses_torch: predict runs under `torch.inference_mode()`.
        import_filename: the file name an imported artifact is stored under.
    """

    name: str = ""
    artifact_format: str = ""
    loads_code: bool = False
    uses_torch: bool = False
    import_filename: str = "model.bin"

    def train(self, *, data: Any, params: dict[str, Any], report: ReportFn) -> Trained:
        raise NotImplementedError

    def save(self, trained: Trained, directory: Path) -> None:
        raise NotImplementedError

    def load(self, directory: Path, *, device: str) -> Any:
        raise NotImplementedError

    def predict(self, loaded: Any, inputs: Sequence[Any], **options: Any) -> list[Any]:
        raise NotImplementedError

    def import_artifact(self, source: Path, directory: Path) -> ImportedArtifact:
        """Validate an uploaded file and write the artifact files into `directory`.

        Raise `ArtifactRejected` with a clear message when the file is not a model of this kind.
        The default refuses: a kind must opt in to imports.
        """
        raise ArtifactRejected(f"Model kind {self.name} does not accept imported artifacts.")


_KINDS: dict[str, ModelKind] = {}


def register_kind(kind: ModelKind) -> ModelKind:
    """Register `kind` under `kind.name` (idempotent for the same class)."""
    if not kind.name or not kind.artifact_format:
        raise ValueError("A ModelKind needs a name and an artifact_format.")
    existing = _KINDS.get(kind.name)
    if existing is not None and type(existing) is not type(kind):
        raise ValueError(f"Model kind {kind.name!r} is already registered by {type(existing).__name__}.")
    _KINDS[kind.name] = kind
    return kind


def unregister_kind(name: str) -> None:
    """Remove a kind (tests only)."""
    _KINDS.pop(name, None)


def get_kind(name: str) -> ModelKind:
    try:
        return _KINDS[name]
    except KeyError as exc:
        raise LookupError(f"Unknown model kind {name!r}. Known: {', '.join(sorted(_KINDS)) or 'none'}.") from exc


def kind_names() -> list[str]:
    return sorted(_KINDS)

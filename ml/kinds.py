"""The ModelKind interface and its registry: the one seam between a domain and its models.

A domain app describes a model family once, in its `ml.py`, and registers it:

    class CreditXGBoost(ModelKind[CreditModel, np.ndarray, float]):
        name = "finance.credit_xgboost"
        artifact_format = "xgboost-ubj"

        def train(self, *, data: CreditTrainingData, params, report, parent=None) -> Trained: ...
        def save(self, trained, directory): ...
        def load(self, directory, *, device, half=False) -> CreditModel: ...
        def predict(self, loaded, inputs, **options) -> Sequence[float]: ...
        def explain(self, loaded, inputs, **options) -> Sequence[np.ndarray]: ...   # optional

    register_kind(CreditXGBoost())

and, because a kind never touches the ORM or storage, the domain also registers how a training
run's `data` reference (a dataset id, a stored zip) becomes the materialised input `train`
receives (a matrix, a folder of images, a sparse interaction matrix):

    training_data_register(kind="finance.credit_xgboost", loader=credit_training_data)

Everything else is done once in `ml/` for every kind: versions, aliases, artifacts with sha256
manifests (`ml.artifacts`), training jobs (`ml.training`), and serving (`ml.runtime`: device and
precision, the per-process cache, batching, the inference context, timing, warm-up). Domain code
never holds a loaded model: it calls `ml.runtime.predict/explain/stream/preprocessor` with a
`ModelVersion`.

## The contract, method by method

Required:
- `train(*, data, params, report, parent)`: fit a model. `data` is what the domain's loader
  returned; `params` the run's parameters (validate them; raise `core.errors.ValidationFailed`
  for bad ones); `report` a `Reporter`; `parent` the loaded parent version for a warm start
  (fine-tuning, partial fit), loaded by `ml` on the training device, or None.
- `save(trained, directory)`: write the artifact files (safe formats only: UBJ/JSON, numpy
  without pickle, torch state dicts) into an empty directory.
- `load(directory, *, device, half)`: read them back on `device` (`cpu`, `cuda:N`); `half` is
  True only when the kind sets `supports_half` and the device is CUDA.
- `predict(loaded, inputs, **options)`: one output per input, in order. `inputs` may be any
  sequence, including a 2-D numpy array (a sequence of rows); outputs likewise.

Optional capabilities (the runtime asks `kind.supports(name)`; the defaults raise
`CapabilityMissing`, which the runtime turns into a clear error):
- `explain(loaded, inputs, **options)`: per-input attributions (TreeSHAP, Grad-CAM, the
  interactions behind a recommendation).
- `stream(loaded, inputs, **options)`: outputs for an iterable of inputs consumed lazily, with
  state across them (tracking objects over video frames).
- `preprocessor(loaded)`: the version's recorded preprocessing as a plain object the domain
  may use to validate and encode its inputs (a feature encoder, id maps, a window and size);
  never the model itself.
- `evaluate(loaded, data, **options)`: metrics on materialised held-out data.
- `export(loaded, fmt, directory)`: write the model in another format (ONNX, ...).
- `warm_up(loaded)`: run once after loading (build predictors, allocate GPU memory) so the
  first request is as fast as the rest.
- `unload(loaded)`: release what the loaded object holds (GPU memory, threads) on eviction.

Attributes: `family` (kinds of one family share registered models: a retail model's versions may be
ALS, BPR or item-kNN, so an A/B split compares two algorithms; default: the kind's own name),
`max_batch_size` (the runtime splits larger `predict`/`explain` calls and joins the
outputs), `per_input_options` (options that hold one value per input, such as the class each
Grad-CAM map explains: the runtime slices them with the inputs; other options go whole to every
batch), `uses_torch` (predict under `torch.inference_mode()`), `supports_half`, `loads_code`
(the artifact format can run code when loaded: imported only by org admins, validated out of
process), `import_filename` (what an imported file is stored as).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from core.tenancy.models import Organization

LoadedT = TypeVar("LoadedT")
InT = TypeVar("InT")
OutT = TypeVar("OutT")

CAPABILITIES = ("explain", "stream", "preprocessor", "evaluate", "export", "warm_up", "unload")


class Reporter(Protocol):
    """Progress of a training run: `report(progress=0..1, message="...", metrics={...})`.

    `metrics` are live metrics (loss, validation AUC per epoch); each call appends one entry to
    the run's `live_metrics` and moves the job's progress bar.
    """

    def __call__(
        self,
        *,
        progress: float | None = None,
        message: str | None = None,
        metrics: Mapping[str, Any] | None = None,
    ) -> None: ...


ReportFn = Reporter  # the name older kinds import


def report_nothing(
    *, progress: float | None = None, message: str | None = None, metrics: Mapping[str, Any] | None = None
) -> None:
    """A `Reporter` that drops everything (demo seeding, benchmarks, tests)."""


@dataclass
class Trained:
    """What `ModelKind.train` returns: the fitted model plus what the version records about it."""

    model: Any
    metrics: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    input_schema: dict[str, Any] = field(default_factory=dict)
    data_fingerprint: str = ""
    model_card: dict[str, Any] = field(default_factory=dict)
    # the kind the version is filed under when training chose it (a search across a family's
    # algorithms serves the winner); empty: the run's own kind
    kind: str = ""


@dataclass
class ImportedArtifact:
    """What `ModelKind.import_artifact` learned from a validated uploaded artifact."""

    metrics: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    input_schema: dict[str, Any] = field(default_factory=dict)
    model_card: dict[str, Any] = field(default_factory=dict)


class ArtifactRejected(Exception):
    """An uploaded artifact is not a valid model of this kind (maps to a 400)."""


class CapabilityMissing(NotImplementedError):
    """The kind does not offer an optional capability (explain, stream, export, ...)."""


class ModelKind(Generic[LoadedT, InT, OutT]):
    """Base class of every model kind; see the module docstring for the contract.

    Type parameters: what `load` returns, one input of `predict`, one output of `predict`.
    """

    name: str = ""
    artifact_format: str = ""
    family: str = ""  # kinds of one family may be versions of the same registered model
    loads_code: bool = False
    uses_torch: bool = False
    supports_half: bool = False
    max_batch_size: int | None = None
    per_input_options: tuple[str, ...] = ()
    import_filename: str = "model.bin"

    # --- required -------------------------------------------------------------------------

    def train(self, *, data: Any, params: dict[str, Any], report: Reporter, parent: LoadedT | None = None) -> Trained:
        raise NotImplementedError

    def save(self, trained: Trained, directory: Path) -> None:
        raise NotImplementedError

    def load(self, directory: Path, *, device: str, half: bool = False) -> LoadedT:
        raise NotImplementedError

    def predict(self, loaded: LoadedT, inputs: Sequence[InT], **options: Any) -> Sequence[OutT]:
        raise NotImplementedError

    # --- optional capabilities --------------------------------------------------------------

    def explain(self, loaded: LoadedT, inputs: Sequence[InT], **options: Any) -> Sequence[Any]:
        raise CapabilityMissing(f"Model kind {self.name} cannot explain its predictions.")

    def stream(self, loaded: LoadedT, inputs: Iterable[InT], **options: Any) -> Iterator[OutT]:
        raise CapabilityMissing(f"Model kind {self.name} cannot process a stream.")

    def preprocessor(self, loaded: LoadedT) -> Any:
        raise CapabilityMissing(f"Model kind {self.name} has no preprocessor.")

    def evaluate(self, loaded: LoadedT, data: Any, **options: Any) -> dict[str, Any]:
        raise CapabilityMissing(f"Model kind {self.name} cannot evaluate on data.")

    def export(self, loaded: LoadedT, fmt: str, directory: Path) -> None:
        raise CapabilityMissing(f"Model kind {self.name} cannot export to {fmt!r}.")

    def warm_up(self, loaded: LoadedT) -> None:
        """Nothing to warm up by default."""

    def unload(self, loaded: LoadedT) -> None:
        """Nothing to release by default (the runtime drops its reference and frees CUDA's cache)."""

    def supports(self, capability: str) -> bool:
        """True when this kind overrides the optional `capability` (one of CAPABILITIES)."""
        if capability not in CAPABILITIES:
            raise ValueError(f"Unknown capability {capability!r}; known: {', '.join(CAPABILITIES)}.")
        return getattr(type(self), capability) is not getattr(ModelKind, capability)

    def import_artifact(self, source: Path, directory: Path) -> ImportedArtifact:
        """Validate an uploaded file and write the artifact files into `directory`.

        Raise `ArtifactRejected` with a clear message when the file is not a model of this kind.
        The default refuses: a kind must opt in to imports.
        """
        raise ArtifactRejected(f"Model kind {self.name} does not accept imported artifacts.")

    @property
    def family_name(self) -> str:
        """The family whose kinds may share a registered model (the kind's own name by default)."""
        return self.family or self.name

    @property
    def domain(self) -> str:
        """The domain the kind belongs to: the part of its name before the first dot."""
        return self.name.split(".", 1)[0]


AnyKind = ModelKind[Any, Any, Any]

_KINDS: dict[str, AnyKind] = {}


def register_kind(kind: AnyKind) -> AnyKind:
    """Register `kind` under `kind.name` (idempotent for the same class)."""
    if not kind.name or not kind.artifact_format or "." not in kind.name:
        raise ValueError("A ModelKind needs a dotted `<domain>.<family>` name and an artifact_format.")
    existing = _KINDS.get(kind.name)
    if existing is not None and type(existing) is not type(kind):
        raise ValueError(f"Model kind {kind.name!r} is already registered by {type(existing).__name__}.")
    _KINDS[kind.name] = kind
    return kind


def unregister_kind(name: str) -> None:
    """Remove a kind (tests only)."""
    _KINDS.pop(name, None)
    _TRAINING_DATA.pop(name, None)


def get_kind(name: str) -> AnyKind:
    try:
        return _KINDS[name]
    except KeyError as exc:
        raise LookupError(f"Unknown model kind {name!r}. Known: {', '.join(sorted(_KINDS)) or 'none'}.") from exc


def kind_names(*, domain: str | None = None) -> list[str]:
    """Registered kind names, optionally only those of one domain."""
    return sorted(name for name in _KINDS if domain is None or name.split(".", 1)[0] == domain)


# --- Training data: how a run's `data` reference becomes what `train` receives -------------------


@dataclass(frozen=True)
class TrainingRequest:
    """What a training-data loader is given.

    Attributes:
        organization: the organization the run belongs to (every lookup must be scoped to it).
        data: the run's JSON reference to its data, as the domain's service stored it.
        params: the run's parameters.
        scratch: an empty private folder the loader may fill (extracted zips, images); `ml`
            removes it after training, so the materialised data may point into it.
    """

    organization: Organization
    data: Mapping[str, Any]
    params: Mapping[str, Any]
    scratch: Path


TrainingDataLoader = Callable[[TrainingRequest], Any]

_TRAINING_DATA: dict[str, TrainingDataLoader] = {}


def training_data_register(*, kind: str, loader: TrainingDataLoader) -> None:
    """Declare how runs of `kind` materialise their data (the domain's service, not the kind)."""
    _TRAINING_DATA[kind] = loader


def training_data_load(kind: str, request: TrainingRequest) -> Any:
    """The materialised training data of a run; the `data` reference itself when no loader is registered."""
    loader = _TRAINING_DATA.get(kind)
    return loader(request) if loader is not None else dict(request.data)

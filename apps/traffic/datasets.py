"""Validating and unpacking uploaded YOLO-format datasets (zip of `data.yaml`, `images/`, `labels/`).

A training upload is checked completely before anything is stored: a safe archive (no
absolute or `..` paths, no links, bounded file count, total size and compression ratio, so
zip-slip and zip bombs are refused), a `data.yaml` with class names, images that decode, and
label files whose rows are `class cx cy w h` with a known class and coordinates in [0, 1].
Every malformed archive, zip bombs included, is a 400 (`invalid_dataset`, `zip_bomb`); only an
upload over `TRAFFIC_MAX_DATASET_BYTES` itself is a 413.

The uploaded `data.yaml` is never handed to ultralytics: its `download:` key would run a
script, its `path:` could point anywhere. Training gets a `data.yaml` written by us.

Training runs reference their stored zip; `detector_training_data` (registered for the kind in
`TrafficConfig.ready()`) materialises it for `YoloDetector.train`, which never sees storage:
the zip is copied into the run's scratch folder, re-validated, extracted, and handed over as a
`DetectorTrainingData` (our `data.yaml`, the zip's sha256, its summary).
"""

from __future__ import annotations

import io
import posixpath
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from django.core.files.storage import default_storage
from PIL import Image, UnidentifiedImageError

from apps.traffic.limits import limit
from core.errors import PayloadTooLarge, ValidationFailed
from core.storage import file_sha256
from ml.kinds import TrainingRequest

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
MAX_LABEL_ERRORS_SHOWN = 5


@dataclass
class DatasetSummary:
    """What a valid dataset holds."""

    names: dict[int, str]
    train_images: int
    val_images: int
    boxes: int
    root: str  # folder inside the zip that holds data.yaml ("" for the zip root)
    train: list[str]
    val: list[str]
    sha256: str = ""
    instances_per_class: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "names": {str(k): v for k, v in self.names.items()},
            "train_images": self.train_images,
            "val_images": self.val_images,
            "boxes": self.boxes,
            "root": self.root,
            "train": self.train,
            "val": self.val,
            "sha256": self.sha256,
            "instances_per_class": self.instances_per_class,
        }


def _invalid(message: str) -> ValidationFailed:
    return ValidationFailed(message, code="invalid_dataset", fields={"dataset": [message]})


def _safe_member_name(info: zipfile.ZipInfo) -> str:
    name = info.filename
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise _invalid(f"The archive contains a link ({name!r}); links are not allowed.")
    if "\\" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise _invalid(f"Unsafe path in archive: {name!r}.")
    normalized = posixpath.normpath(name)
    if normalized.startswith("../") or normalized == ".." or "/../" in f"/{name}/":
        raise _invalid(f"Unsafe path in archive: {name!r} (points outside the dataset).")
    return normalized


def _zip_bomb(message: str) -> ValidationFailed:
    # A zip bomb is a malformed dataset (400), not a large upload: the upload itself is small.
    return ValidationFailed(message, code="zip_bomb", fields={"dataset": [message]})


def _check_archive(archive: zipfile.ZipFile, compressed_size: int) -> list[zipfile.ZipInfo]:
    infos = archive.infolist()
    if len(infos) > limit("TRAFFIC_MAX_DATASET_FILES"):
        raise _zip_bomb(f"The archive has {len(infos)} entries; the limit is {limit('TRAFFIC_MAX_DATASET_FILES')}.")
    total = 0
    max_ratio = limit("TRAFFIC_MAX_DATASET_COMPRESSION_RATIO")
    for info in infos:
        _safe_member_name(info)
        total += info.file_size
        if info.file_size > 1024 * 1024 and info.file_size > max_ratio * max(info.compress_size, 1):
            raise _zip_bomb(
                f"{info.filename!r} expands {info.file_size // max(info.compress_size, 1)}x; refusing a zip bomb."
            )
    if total > limit("TRAFFIC_MAX_DATASET_UNCOMPRESSED_BYTES"):
        raise _zip_bomb("The archive expands beyond the uncompressed size limit; refusing a zip bomb.")
    if total > 1024 * 1024 and total > max_ratio * max(compressed_size, 1):
        raise _zip_bomb("The archive's compression ratio is implausible; refusing a zip bomb.")
    return [info for info in infos if not info.is_dir()]


def _parse_names(data: dict[str, Any]) -> dict[int, str]:
    names = data.get("names")
    if isinstance(names, list):
        parsed = {index: str(name) for index, name in enumerate(names)}
    elif isinstance(names, dict):
        try:
            parsed = {int(index): str(name) for index, name in names.items()}
        except (TypeError, ValueError):
            raise _invalid("data.yaml `names` keys must be class indices 0..n-1.")
    else:
        raise _invalid("data.yaml must list the class `names`.")
    if not parsed or sorted(parsed) != list(range(len(parsed))):
        raise _invalid("data.yaml `names` must be the classes 0..n-1.")
    if any(not name.strip() for name in parsed.values()):
        raise _invalid("Class names must not be empty.")
    if "nc" in data and data["nc"] != len(parsed):
        raise _invalid(f"data.yaml says nc={data['nc']} but lists {len(parsed)} names.")
    return parsed


def _split_dirs(data: dict[str, Any], key: str, root: str) -> list[str]:
    value = data.get(key)
    if value is None:
        return []
    values = value if isinstance(value, list) else [value]
    folders = []
    for item in values:
        if not isinstance(item, str) or not item.strip():
            raise _invalid(f"data.yaml `{key}` must be a folder inside the archive.")
        path = PurePosixPath(item.strip())
        if path.is_absolute() or ".." in path.parts or item.startswith(("http:", "https:")):
            raise _invalid(f"data.yaml `{key}` must be a relative folder inside the archive, not {item!r}.")
        normalized = posixpath.normpath(posixpath.join(root, str(path)) if root else str(path))
        folders.append(normalized.rstrip("/"))
    return folders


def _label_path_for(image_name: str) -> str:
    """ultralytics' rule: the last `/images/` becomes `/labels/`, the suffix becomes `.txt`."""
    padded = f"/{image_name}"
    head, sep, tail = padded.rpartition("/images/")
    if not sep:
        return ""
    return (f"{head}/labels/{tail}").lstrip("/").rsplit(".", 1)[0] + ".txt"


def _check_image(archive: zipfile.ZipFile, name: str) -> None:
    try:
        with Image.open(io.BytesIO(archive.read(name))) as image:
            if image.width * image.height > limit("TRAFFIC_MAX_IMAGE_PIXELS"):
                raise _invalid(f"Image {name!r} is larger than the pixel limit.")
            image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise _invalid(f"Image {name!r} does not decode: {exc}")


def _check_labels(text: str, name: str, nc: int, per_class: dict[str, int], names: dict[int, str]) -> int:
    boxes = 0
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{name} line {number}"
        if len(fields) != 5:
            raise _invalid(f"{where}: expected `class cx cy w h`, got {len(fields)} values.")
        try:
            class_id = int(fields[0])
            values = [float(value) for value in fields[1:]]
        except ValueError:
            raise _invalid(f"{where}: not numbers.")
        if not 0 <= class_id < nc:
            raise _invalid(f"{where}: class {class_id} is not one of the {nc} classes in data.yaml.")
        if any(not 0.0 <= value <= 1.0 for value in values):
            raise _invalid(f"{where}: coordinates must be normalised to [0, 1].")
        if values[2] <= 0 or values[3] <= 0:
            raise _invalid(f"{where}: box width and height must be positive.")
        per_class[names[class_id]] = per_class.get(names[class_id], 0) + 1
        boxes += 1
    return boxes


def dataset_validate(path: Path) -> DatasetSummary:
    """Check an uploaded dataset zip completely; raise ValidationFailed/PayloadTooLarge if unusable."""
    size = path.stat().st_size
    if size == 0:
        raise _invalid("The dataset file is empty.")
    if size > limit("TRAFFIC_MAX_DATASET_BYTES"):
        raise PayloadTooLarge("The dataset archive is larger than the configured limit.")
    if not zipfile.is_zipfile(path):
        raise _invalid("The dataset must be a zip archive.")
    try:
        with zipfile.ZipFile(path) as archive:
            summary = _validate_archive(archive, size)
    except zipfile.BadZipFile as exc:
        raise _invalid(f"The zip archive is corrupt: {exc}")
    summary.sha256 = file_sha256(path)
    return summary


def _validate_archive(archive: zipfile.ZipFile, size: int) -> DatasetSummary:
    infos = _check_archive(archive, size)
    files = {posixpath.normpath(info.filename): info for info in infos}
    yaml_candidates = sorted(
        (name for name in files if PurePosixPath(name).name in {"data.yaml", "data.yml"} and name.count("/") <= 1),
        key=lambda name: name.count("/"),
    )
    if not yaml_candidates:
        raise _invalid("The archive has no data.yaml (at its root or in one top-level folder).")
    yaml_name = yaml_candidates[0]
    root = posixpath.dirname(yaml_name)
    try:
        data = yaml.safe_load(archive.read(yaml_name).decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise _invalid(f"data.yaml is not valid YAML: {exc}")
    if not isinstance(data, dict):
        raise _invalid("data.yaml must be a mapping with `train`, `val` and `names`.")
    names = _parse_names(data)
    train = _split_dirs(data, "train", root)
    if not train:
        raise _invalid("data.yaml must name the `train` images folder.")
    val = _split_dirs(data, "val", root) or train

    def images_under(folders: list[str]) -> list[str]:
        found = []
        for folder in folders:
            prefix = f"{folder}/" if folder not in {"", "."} else ""
            found += [n for n in files if n.startswith(prefix) and PurePosixPath(n).suffix.lower() in IMAGE_SUFFIXES]
        return sorted(set(found))

    train_images, val_images = images_under(train), images_under(val)
    if not train_images:
        raise _invalid(f"No images under {', '.join(train)}.")
    if not val_images:
        raise _invalid(f"No images under {', '.join(val)}.")
    boxes = 0
    per_class: dict[str, int] = {}
    for image_name in sorted(set(train_images) | set(val_images)):
        if "/images/" not in f"/{image_name}":
            raise _invalid(f"Image {image_name!r} must sit under an `images/` folder (labels under `labels/`).")
        _check_image(archive, image_name)
        label_name = _label_path_for(image_name)
        if label_name in files:
            try:
                text = archive.read(label_name).decode("utf-8")
            except UnicodeDecodeError:
                raise _invalid(f"{label_name} is not UTF-8 text.")
            boxes += _check_labels(text, label_name, len(names), per_class, names)
    if boxes == 0:
        raise _invalid("No labelled boxes found: label files go under `labels/`, mirroring `images/`.")
    return DatasetSummary(
        names=names,
        train_images=len(train_images),
        val_images=len(val_images),
        boxes=boxes,
        root=root,
        train=train,
        val=val,
        instances_per_class=per_class,
    )


@dataclass(frozen=True)
class DetectorTrainingData:
    """A dataset ready for `YoloDetector.train`: what the kind receives instead of a storage name.

    Attributes:
        data_yaml: the `data.yaml` Tessera wrote for the extracted images and labels.
        sha256: the dataset zip's sha256 (the version's data fingerprint).
        summary: `DatasetSummary.as_json()` (recorded in the version's model card).
    """

    data_yaml: Path
    sha256: str
    summary: dict[str, Any]


def dataset_materialise(path: Path, destination: Path) -> DetectorTrainingData:
    """Re-validate and unpack the zip at `path` under `destination`, with our own data.yaml."""
    summary = dataset_validate(path)
    destination.mkdir(parents=True, exist_ok=True)
    base = destination.resolve()
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            target = (base / _safe_member_name(info)).resolve()
            if not target.is_relative_to(base):  # belt and braces after _safe_member_name
                raise _invalid(f"Unsafe path in archive: {info.filename!r}.")
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as source, target.open("wb") as out:
                while chunk := source.read(1 << 20):
                    out.write(chunk)
    data_yaml = destination / "tessera-data.yaml"
    data_yaml.write_text(
        yaml.safe_dump(
            {
                "path": str(base),
                "train": summary.train,
                "val": summary.val,
                "names": summary.names,
            }
        )
    )
    return DetectorTrainingData(data_yaml=data_yaml, sha256=summary.sha256, summary=summary.as_json())


def dataset_extract(path: Path, destination: Path) -> Path:
    """Re-validate and unpack the zip under `destination`; return the path of our own data.yaml."""
    return dataset_materialise(path, destination).data_yaml


def detector_training_data(request: TrainingRequest) -> DetectorTrainingData:
    """The training-data loader of `traffic.yolo_detector` runs (`ml.kinds.training_data_register`).

    `request.data` is what `detector_training_start` stored: `{"dataset": <storage name>,
    "sha256": ..., "summary": {...}}`. The stored zip is copied into the run's scratch folder
    (removed by `ml` after training) and must still have the sha256 recorded at upload.
    """
    zip_path = request.scratch / "dataset.zip"
    with default_storage.open(str(request.data["dataset"]), "rb") as source, zip_path.open("wb") as out:
        for chunk in source.chunks():
            out.write(chunk)
    data = dataset_materialise(zip_path, request.scratch / "dataset")
    zip_path.unlink()
    recorded = str(request.data.get("sha256") or "")
    if recorded and recorded != data.sha256:
        raise ValidationFailed(
            "The stored dataset changed since it was uploaded (sha256 mismatch).", code="invalid_dataset"
        )
    return data

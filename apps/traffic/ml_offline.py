"""Make ultralytics run with no network, before it is first imported.

ultralytics looks online at import (`ONLINE`), downloads fonts for plots and dataset checks,
downloads `yolo11n.pt` for its AMP check, pip-installs missing packages, checks for updates and
sends usage events. Tessera runs with no network, so every one of those is switched off here,
in the one place that imports ultralytics (`apps.traffic.ml`) and in the weights validator.
"""

from __future__ import annotations

import os
from pathlib import Path

OFFLINE_ENV = {
    "YOLO_OFFLINE": "1",  # ONLINE = False: no update checks, no events, no hub
    "YOLO_AUTOINSTALL": "false",  # never pip-install at run time
    "YOLO_VERBOSE": "false",
    "ULTRALYTICS_SKIP_REQUIREMENTS_CHECKS": "1",
}
_configured = False


def configure_ultralytics_offline(config_dir: Path | None = None) -> None:
    """Set the offline environment, import ultralytics once and switch off its integrations."""
    global _configured
    if _configured:
        return
    for name, value in OFFLINE_ENV.items():
        os.environ.setdefault(name, value)
    # Importing ultralytics sets OMP_NUM_THREADS=1 when it is unset, which would silently make
    # every OpenMP library loaded later in this process (XGBoost scoring in the same worker,
    # torch's CPU kernels) single-threaded. Keep the machine's width unless the operator chose.
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    if config_dir is not None:
        config_dir.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("YOLO_CONFIG_DIR", str(config_dir))
    import ultralytics.data.utils as data_utils
    from ultralytics.utils import SETTINGS

    updates = {
        "sync": False,
        "clearml": False,
        "comet": False,
        "dvc": False,
        "mlflow": False,
        "raytune": False,
        "tensorboard": False,
        "wandb": False,
        "vscode_msg": False,
        "openvino_msg": False,
    }
    if any(SETTINGS.get(key) != value for key, value in updates.items()):
        SETTINGS.update(updates)
    # Dataset checks fetch Arial.ttf for plots we never draw (we train with plots=False and draw
    # annotated images ourselves with OpenCV's built-in Hershey fonts).
    data_utils.check_font = lambda *args, **kwargs: None
    # ultralytics replaces PIL.Image.open with a wrapper that, on any unidentified file, tries to
    # pip-install `pi-heif` (a network call, and an ImportError when offline). Restore Pillow's own:
    # Tessera does not accept HEIF, and a non-image upload must simply fail to open.
    from PIL import Image
    from ultralytics.utils import patches

    original_open = getattr(patches, "_image_open", None)
    if original_open is not None and Image.open is not original_open:
        Image.open = original_open
    _configured = True

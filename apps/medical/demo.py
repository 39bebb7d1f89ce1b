"""`seed_demo` for medical imaging: a few real studies and a DICOM node, so the study list, the
viewer and OHIF have something to show and `make run` users can C-STORE at once.

The studies are files that ship with the packages (no download): pydicom's CT_small (CT,
128x128), MR_small (MR, 64x64) and emri_small (a 10-frame MR), from pydicom-data a real 512x512
head CT slice (693_UNCR: its UNCI sibling went through lossy JPEG 2000 and shows blocks), and
pydicom's file-set study 98892001 (two CT series, 7 slices of 16x16: a real scan shrunk).
Every file goes through `services.instance_store` like any received instance (validation,
index, audit); storing the same bytes again is a no-op, so seeding twice stores nothing twice.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from pydicom.data import get_testdata_file, get_testdata_files

from apps.medical.choices import ReceivedVia
from apps.medical.dicom_files import InstanceRefused
from apps.medical.models import DicomNode
from apps.medical.services import StoreStatus, instance_store
from core.storage import file_sha256, scratch_directory
from core.tenancy.actors import Actor
from core.tenancy.models import Organization

DEMO_AE_TITLE = "DEMO_MODALITY"
DEMO_FILES = ("CT_small.dcm", "MR_small.dcm", "emri_small.dcm", "693_UNCR.dcm")
# pydicom's file-set test data: study 98892001, series CT2N (2 slices) and CT5N (5 slices)
DEMO_SERIES_FOLDERS = ("98892001/CT2N/", "98892001/CT5N/")


def demo_files() -> list[Path]:
    """The demo's DICOM files that are installed here (pydicom-data may be absent: then fewer)."""
    paths = [Path(str(found)) for name in DEMO_FILES if (found := get_testdata_file(name)) is not None]
    for folder in DEMO_SERIES_FOLDERS:
        paths += sorted(
            Path(found)
            for found in get_testdata_files()
            if folder in found.replace("\\", "/") and Path(found).is_file()
        )
    return paths


def medical_demo_seed(*, org: Organization, stdout: Any) -> None:
    """Store the demo studies in `org`'s archive and register the demo modality (idempotent)."""
    actor = Actor.system(org)
    counts = {StoreStatus.STORED: 0, StoreStatus.UNCHANGED: 0}
    with scratch_directory(prefix="medical-demo-") as folder:
        for number, source in enumerate(demo_files()):
            # A copy: storing may move a local file into place, and the source is a package's file.
            path = folder / f"{number}.dcm"
            shutil.copyfile(source, path)
            try:
                outcome = instance_store(
                    actor=actor,
                    path=path,
                    sha256=file_sha256(path),
                    size=path.stat().st_size,
                    received_via=ReceivedVia.DEMO,
                )
            except InstanceRefused as refusal:
                stdout.write(f"  skipped {source.name}: {refusal.message}")
                continue
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
    stdout.write(
        f"  demo studies: {counts[StoreStatus.STORED]} instances stored, {counts[StoreStatus.UNCHANGED]} already there"
    )
    node = DicomNode.objects.filter(ae_title=DEMO_AE_TITLE).first()
    if node is None:
        # Direct create: a demo fixture, like the seeded users; real nodes are added by org
        # admins through the portal or the API (audited).
        DicomNode.objects.create(
            organization=org, ae_title=DEMO_AE_TITLE, description="Demo modality (seed_demo): any host may send"
        )
        stdout.write(f"  DICOM node {DEMO_AE_TITLE} may now C-STORE to the listener")
    elif node.organization_id != org.pk:
        stdout.write(f"  DICOM node {DEMO_AE_TITLE} belongs to another organization; not changed")

"""`seed_demo` for medical: real studies from pydicom's and pydicom-data's files, stored through
the archive (received via demo), idempotent, and the demo modality's DICOM node."""

from __future__ import annotations

import io

import pydicom
import pytest

from apps.medical.demo import DEMO_AE_TITLE, demo_files, medical_demo_seed
from apps.medical.models import DicomNode, Instance, Series, Study
from core.audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def _seed(org) -> str:
    """The archive half of the medical seed (the diagnosis half: tests/medical/test_diagnosis_demo.py)."""
    out = io.StringIO()
    medical_demo_seed(org=org, stdout=out)
    return out.getvalue()


def test_seed_stores_real_studies_once(org):
    # given the demo files installed here (pydicom's own three at least)
    files = demo_files()
    names = {path.name for path in files}
    assert {"CT_small.dcm", "MR_small.dcm", "emri_small.dcm"} <= names
    # when seeding
    output = _seed(org)
    # then every file is an instance of the archive, received via demo, audited as a store
    instances = Instance.objects.filter(organization=org)
    assert instances.count() == len(files)
    assert set(instances.values_list("received_via", flat=True)) == {"demo"}
    expected_sops = {str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID) for path in files}
    assert set(instances.values_list("sop_instance_uid", flat=True)) == expected_sops
    assert AuditEvent.objects.filter(action="medical.instance.store").count() == len(files)
    assert f"{len(files)} instances stored" in output
    # CT, MR and a multi-frame instance are among them
    modalities = set(Series.objects.filter(organization=org).values_list("modality", flat=True))
    assert {"CT", "MR"} <= modalities
    assert instances.filter(number_of_frames=10).exists()
    # and the package files are still where they were (storing copies, never moves, them)
    assert all(path.is_file() for path in files)

    # when seeding again, nothing is stored twice
    studies = Study.objects.filter(organization=org).count()
    output = _seed(org)
    assert Instance.objects.filter(organization=org).count() == len(files)
    assert Study.objects.filter(organization=org).count() == studies
    assert AuditEvent.objects.filter(action="medical.instance.store").count() == len(files)
    assert f"0 instances stored, {len(files)} already there" in output


def test_seed_registers_the_demo_modality_once(org, other_org):
    _seed(org)
    _seed(org)
    node = DicomNode.objects.get(ae_title=DEMO_AE_TITLE)
    assert node.organization == org and node.active
    # another organization's seed leaves the title where it is (AE titles are unique)
    output = _seed(other_org)
    assert DicomNode.objects.get(ae_title=DEMO_AE_TITLE).organization == org
    assert "belongs to another organization" in output


def test_seeded_study_shows_in_the_demo_clinicians_portal(org, client_for):
    _seed(org)
    body = client_for(org, "clinician").get("/portal/medical/").content.decode()
    assert "CompressedSamples^CT1" in body
    assert "CompressedSamples^MR1" in body

"""Reads of the imaging archive, always inside one organization: another organization's UIDs
are simply not found (`NotFound`, a 404), never "forbidden"."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.medical.models import ArchiveSettings, DicomNode, Instance, Series, Study
from core.errors import NotFound
from core.tenancy.models import Organization


def study_get(*, org: Organization, study_uid: str) -> Study:
    study = Study.objects.select_related("patient").filter(organization=org, study_instance_uid=study_uid).first()
    if study is None:
        raise NotFound(f"Study {study_uid} not found.")
    return study


def series_get(*, org: Organization, study_uid: str, series_uid: str) -> Series:
    series = (
        Series.objects.select_related("study", "study__patient")
        .filter(organization=org, series_instance_uid=series_uid, study__study_instance_uid=study_uid)
        .first()
    )
    if series is None:
        raise NotFound(f"Series {series_uid} of study {study_uid} not found.")
    return series


def instance_get(*, org: Organization, study_uid: str, series_uid: str, sop_uid: str) -> Instance:
    instance = (
        Instance.objects.select_related("series", "series__study", "series__study__patient")
        .filter(
            organization=org,
            sop_instance_uid=sop_uid,
            series__series_instance_uid=series_uid,
            series__study__study_instance_uid=study_uid,
        )
        .first()
    )
    if instance is None:
        raise NotFound(f"Instance {sop_uid} of series {series_uid} not found.")
    return instance


def instances_of(*, org: Organization, study_uid: str, series_uid: str = "", sop_uid: str = "") -> QuerySet[Instance]:
    """The instances a WADO-RS retrieve addresses, in series then instance order; NotFound if none."""
    instances = Instance.objects.select_related("series", "series__study", "series__study__patient").filter(
        organization=org, series__study__study_instance_uid=study_uid
    )
    if series_uid:
        instances = instances.filter(series__series_instance_uid=series_uid)
    if sop_uid:
        instances = instances.filter(sop_instance_uid=sop_uid)
    instances = instances.order_by(
        "series__series_number", "series__series_instance_uid", "instance_number", "sop_instance_uid"
    )
    if not instances.exists():
        what = sop_uid or series_uid or study_uid
        raise NotFound(f"{what} not found.")
    return instances


def archive_settings_get(*, org: Organization) -> ArchiveSettings:
    settings_row = ArchiveSettings.objects.filter(organization=org).first()
    return settings_row or ArchiveSettings(organization=org)


def dicom_node_list(*, org: Organization) -> QuerySet[DicomNode]:
    return DicomNode.objects.filter(organization=org)


def dicom_node_get(*, org: Organization, node_id: int) -> DicomNode:
    node = DicomNode.objects.filter(organization=org, pk=node_id).first()
    if node is None:
        raise NotFound("DICOM node not found.")
    return node


def dicom_node_for_ae_title(*, ae_title: str) -> DicomNode | None:
    """The active node a calling AE title belongs to (the listener's organization lookup)."""
    return DicomNode.objects.select_related("organization").filter(ae_title=ae_title.strip(), active=True).first()

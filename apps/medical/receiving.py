"""Receiving many instances at once (a STOW-RS body, a portal upload): each file is stored or
refused on its own, and the report says which, with the PS3.18 reasons.

Every file goes through `services.instance_store`, so STOW-RS, the portal upload and the DICOM
listener apply the same validation, duplicates policy and audit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from apps.medical.dicom_files import PROCESSING_FAILURE, InstanceRefused
from apps.medical.selectors import archive_settings_get
from apps.medical.services import StoreCache, StoreOutcome, instance_store
from core.tenancy.actors import Actor

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReceivedFile:
    """A file received from a client, already on local disk, with its sha256 and size."""

    path: Path
    sha256: str
    size: int


@dataclass
class ReceiveReport:
    """What became of each received file, in order."""

    stored: list[StoreOutcome] = field(default_factory=list)
    refused: list[InstanceRefused] = field(default_factory=list)

    @property
    def warnings(self) -> list[StoreOutcome]:
        return [outcome for outcome in self.stored if outcome.warning_reason is not None]

    def refuse(self, refusal: InstanceRefused) -> None:
        self.refused.append(refusal)


def instances_receive(
    *, actor: Actor, files: Iterable[ReceivedFile], received_via: str, expected_study_uid: str = ""
) -> ReceiveReport:
    """Store each file (or record why not); an unexpected error on one file refuses that file only."""
    report = ReceiveReport()
    policy = archive_settings_get(org=actor.organization)
    cache = StoreCache()  # the parents of a body's instances are looked up once
    for received in files:
        try:
            report.stored.append(
                instance_store(
                    actor=actor,
                    path=received.path,
                    sha256=received.sha256,
                    size=received.size,
                    received_via=received_via,
                    expected_study_uid=expected_study_uid,
                    archive_settings=policy,
                    cache=cache,
                )
            )
        except InstanceRefused as refusal:
            report.refuse(refusal)
        except Exception as exc:  # a failure of ours on one file must not lose the others' answers
            logger.exception("Storing %s failed", received.path.name)
            report.refuse(InstanceRefused(PROCESSING_FAILURE, f"The archive could not store the instance: {exc}"))
    return report

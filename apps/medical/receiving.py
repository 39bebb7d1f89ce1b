"""Receiving many instances at once (a STOW-RS body, a portal upload): each file is stored or
refused on its own, and the report says which, with the PS3.18 reasons.

Every file goes through `services.instances_store_batch` (and `instance_store`), so STOW-RS,
the portal upload and the DICOM listener apply the same validation, duplicates policy and audit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from apps.medical.dicom_files import PROCESSING_FAILURE, InstanceRefused
from apps.medical.models import ArchiveSettings
from apps.medical.selectors import archive_settings_get
from apps.medical.services import ReceivedFile, StoreCache, StoreOutcome, instances_store_batch
from core.tenancy.actors import Actor

logger = logging.getLogger(__name__)


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


BATCH_FILES = 50
BATCH_BYTES = 64 * 1024 * 1024  # the parsed datasets of one batch are held in memory together


def instances_receive(
    *, actor: Actor, files: Iterable[ReceivedFile], received_via: str, expected_study_uid: str = ""
) -> ReceiveReport:
    """Store each file (or record why not), in batches (`services.instances_store_batch`).

    An unexpected error on a batch is retried one file at a time, so it refuses only the file
    that causes it (FailureReason 0x0110), never the others' answers.
    """
    report = ReceiveReport()
    policy = archive_settings_get(org=actor.organization)
    cache = StoreCache()  # the parents of a body's instances are looked up once
    for batch in _batches(files):
        try:
            results = instances_store_batch(
                actor=actor,
                files=batch,
                received_via=received_via,
                expected_study_uid=expected_study_uid,
                archive_settings=policy,
                cache=cache,
            )
        except Exception:
            logger.exception("Storing a batch of %d files failed; storing them one by one", len(batch))
            cache.clear()
            results = [_store_alone(actor, received, received_via, expected_study_uid, policy) for received in batch]
        for result in results:
            if isinstance(result, InstanceRefused):
                report.refuse(result)
            else:
                report.stored.append(result)
    return report


def _batches(files: Iterable[ReceivedFile]) -> Iterator[list[ReceivedFile]]:
    batch: list[ReceivedFile] = []
    size = 0
    for received in files:
        batch.append(received)
        size += received.size
        if len(batch) >= BATCH_FILES or size >= BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _store_alone(
    actor: Actor, received: ReceivedFile, received_via: str, expected_study_uid: str, policy: ArchiveSettings
) -> StoreOutcome | InstanceRefused:
    """One file of a failed batch on its own: only a file that fails by itself is refused (0x0110)."""
    try:
        (result,) = instances_store_batch(
            actor=actor,
            files=[received],
            received_via=received_via,
            expected_study_uid=expected_study_uid,
            archive_settings=policy,
        )
    except Exception as exc:  # a failure of ours on one file must not lose the others' answers
        logger.exception("Storing %s failed", received.path.name)
        return InstanceRefused(PROCESSING_FAILURE, f"The archive could not store the instance: {exc}")
    return result

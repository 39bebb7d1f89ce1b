"""`manage.py medical_storage_check [--delete]`: the archive's files against its index.

Deleting a study removes its rows in one transaction and its files only after that commits
(`services.study_delete`), so a crash in between can leave files no instance refers to; never
the other way round. This command lists such orphans under `medical/org-*/instances/` (and, as
an error, any instance whose file is missing), and with `--delete` removes the orphans.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandParser

from apps.medical.models import Instance
from core.storage import storage_delete

ROOT = "medical"


def _files(folder: str) -> Iterator[str]:
    """Every file under `folder` of the default storage (filesystem or S3 alike)."""
    try:
        folders, files = default_storage.listdir(folder)
    except FileNotFoundError:
        return
    for name in files:
        yield f"{folder}/{name}"
    for child in folders:
        yield from _files(f"{folder}/{child}")


class Command(BaseCommand):
    help = "Find (and with --delete remove) archive files no instance refers to; report instances without a file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--delete", action="store_true", help="remove the orphaned files")

    def handle(self, *args: Any, **options: Any) -> None:
        referenced = set(Instance.objects.values_list("file", flat=True))
        on_disk = {name for name in _files(ROOT) if "/instances/" in name}
        orphans = sorted(on_disk - referenced)
        missing = sorted(referenced - on_disk)
        for name in orphans:
            self.stdout.write(f"orphan  {name}")
        for name in missing:
            self.stderr.write(f"MISSING {name} (an instance row refers to it)")
        if options["delete"] and orphans:
            storage_delete(orphans)
        verb = "deleted" if options["delete"] else "found"
        self.stdout.write(f"{len(orphans)} orphaned file(s) {verb}; {len(missing)} instance(s) without a file.")
        if missing:
            raise SystemExit(1)

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from core.tenancy.services import organization_create


class Command(BaseCommand):
    help = "Create an organization (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--slug", required=True)
        parser.add_argument("--name", required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        org, created = organization_create(slug=options["slug"], name=options["name"])
        self.stdout.write(f"{'Created' if created else 'Exists'}: organization {org.slug} ({org.name})")

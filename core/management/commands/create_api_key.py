from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from core.errors import DomainError
from core.tenancy.actors import Actor
from core.tenancy.selectors import organization_get_by_slug
from core.tenancy.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key; the key is printed alone on the last line (shown only this once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", required=True, help="organization slug")
        parser.add_argument("--scopes", required=True, help="comma-separated: medical,finance,retail,traffic,ml")
        parser.add_argument("--name", default="cli")
        parser.add_argument("--expires-days", type=int, default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            org = organization_get_by_slug(slug=options["org"])
            expires_at = timezone.now() + timedelta(days=options["expires_days"]) if options["expires_days"] else None
            new_key = api_key_create(
                actor=Actor.system(org),
                name=options["name"],
                scopes=[s.strip() for s in options["scopes"].split(",") if s.strip()],
                expires_at=expires_at,
            )
        except DomainError as exc:
            raise CommandError(f"{exc.message} {exc.fields or ''}".strip()) from exc
        self.stdout.write(
            f"API key {new_key.api_key.name} ({new_key.api_key.prefix}) scopes={','.join(new_key.api_key.scopes)}"
        )
        self.stdout.write(new_key.raw_key)

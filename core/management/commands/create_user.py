from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.errors import DomainError
from core.tenancy.choices import Role
from core.tenancy.selectors import organization_get_by_slug
from core.tenancy.services import user_create


class Command(BaseCommand):
    help = "Create a user (or update their password/role) as a member of an organization."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", required=True, help="organization slug")
        parser.add_argument("--username", required=True)
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument("--password", default=None)
        parser.add_argument("--email", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            org = organization_get_by_slug(slug=options["org"])
            user, membership = user_create(
                org=org,
                username=options["username"],
                role=options["role"],
                password=options["password"],
                email=options["email"],
            )
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"User {user.username} is {membership.role} in {org.slug}")

"""`seed_demo`: organization `demo`, one user per role, and each domain app's demo data/models."""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from core.apps import domain_app_configs
from core.tenancy.choices import Role
from core.tenancy.services import organization_create, user_create

DEMO_ORG = "demo"
# Documented in the README. Demo only: change or remove these users on a real deployment.
DEMO_USERS = {
    "admin": (Role.ORG_ADMIN, "demo-admin-pass"),
    "clinician": (Role.CLINICIAN, "demo-clinician-pass"),
    "analyst": (Role.CREDIT_ANALYST, "demo-analyst-pass"),
    "merchant": (Role.MERCHANT, "demo-merchant-pass"),
    "operator": (Role.TRAFFIC_OPERATOR, "demo-operator-pass"),
}


class Command(BaseCommand):
    help = "Seed the demo organization, a user per role and demo models (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--skip-models", action="store_true", help="users only (fast)")

    def handle(self, *args: Any, **options: Any) -> None:
        org, _ = organization_create(slug=DEMO_ORG, name="Demo Organization")
        for username, (role, password) in DEMO_USERS.items():
            user_create(org=org, username=username, role=role, password=password)
            self.stdout.write(f"  user {username:<10} role {role:<17} password {password}")
        if options["skip_models"]:
            return
        for config in domain_app_configs():
            self.stdout.write(f"Seeding {config.verbose_name} …")
            config.seed_demo(org=org, stdout=self.stdout)
        self.stdout.write(self.style.SUCCESS("Demo organization ready."))

"""Management commands: create_org, create_user, create_api_key, seed_demo."""

from __future__ import annotations

import io
import os
import re
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from core.management.commands.seed_demo import DEMO_USERS
from core.tenancy.choices import Role
from core.tenancy.models import ApiKey, Membership, Organization
from core.tenancy.services import api_key_hash

pytestmark = pytest.mark.django_db

KEY_LINE = r"^tsk_[0-9a-f]{12}_[A-Za-z0-9_-]{40,}$"


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_create_org_is_idempotent() -> None:
    # when
    first = run("create_org", "--slug", "acme", "--name", "Acme Health")
    second = run("create_org", "--slug", "acme", "--name", "Another name")
    # then
    assert first.startswith("Created")
    assert second.startswith("Exists")
    assert list(Organization.objects.values_list("slug", "name")) == [("acme", "Acme Health")]


@pytest.mark.parametrize("role", Role.values)
def test_create_user_with_each_role(org: Any, role: str) -> None:
    # when
    output = run("create_user", "--org", "acme", "--username", f"u-{role}", "--role", role, "--password", "pw-12345")
    # then
    user = get_user_model().objects.get(username=f"u-{role}")
    assert Membership.objects.get(user=user, organization=org).role == role
    assert user.check_password("pw-12345")
    assert f"is {role} in acme" in output


def test_create_user_again_changes_role_without_duplicating(org: Any) -> None:
    # given
    run("create_user", "--org", "acme", "--username", "ann", "--role", "clinician")
    # when
    run("create_user", "--org", "acme", "--username", "ann", "--role", "org_admin")
    # then
    assert list(Membership.objects.filter(user__username="ann").values_list("role", flat=True)) == ["org_admin"]


def test_create_user_with_bad_role_is_an_error(org: Any) -> None:
    # when / then
    with pytest.raises(CommandError, match="invalid choice"):
        run("create_user", "--org", "acme", "--username", "eve", "--role", "overlord")
    assert not get_user_model().objects.filter(username="eve").exists()


def test_create_user_in_unknown_org_is_an_error() -> None:
    with pytest.raises(CommandError, match="not found"):
        run("create_user", "--org", "nowhere", "--username", "eve", "--role", "clinician")


def test_create_api_key_prints_a_key_that_authenticates(org: Any) -> None:
    # when
    output = run("create_api_key", "--org", "acme", "--scopes", "finance, ml", "--name", "partner")
    # then
    lines = output.strip().splitlines()
    raw_key = lines[-1]
    assert raw_key.startswith("tsk_") and " " not in raw_key
    api_key = ApiKey.objects.get(organization=org)
    assert (api_key.name, api_key.scopes) == ("partner", ["finance", "ml"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    assert client.get("/api/v1/jobs/").status_code == 200


def test_create_api_key_with_expiry(org: Any) -> None:
    # when
    run("create_api_key", "--org", "acme", "--scopes", "ml", "--expires-days", "7")
    # then
    api_key = ApiKey.objects.get(organization=org)
    assert api_key.expires_at is not None and api_key.is_active


@pytest.mark.parametrize(
    ("args", "message"),
    [(("--org", "acme", "--scopes", "root"), "Invalid scopes"), (("--org", "nowhere", "--scopes", "ml"), "not found")],
)
def test_create_api_key_errors(org: Any, args: tuple[str, ...], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        run("create_api_key", *args)
    assert not ApiKey.objects.exists()


def test_create_api_key_last_line_contract_in_a_real_process(tmp_path: Path) -> None:
    """Scripts do `KEY=$(manage.py create_api_key ... | tail -n 1)`: the last line is the key alone."""
    # given: a fresh embedded database under a temporary VAR_DIR, with organization `acme`
    env = {**os.environ, "DJANGO_ENV": "test", "VAR_DIR": str(tmp_path)}
    env.pop("DATABASE_URL", None)

    def manage(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=settings.BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    setup = manage(  # one process, and only the tables the command needs: keeps the test fast
        "shell",
        "-c",
        "from django.core.management import call_command as c;"
        "c('migrate', 'core', verbosity=0); c('create_org', slug='acme', name='Acme')",
    )
    assert setup.returncode == 0, setup.stderr
    # when
    result = manage("create_api_key", "--org", "acme", "--scopes", "finance")
    # then
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) >= 2  # a human-readable line, then the key
    raw_key = lines[-1]
    assert re.match(KEY_LINE, raw_key), raw_key
    with closing(sqlite3.connect(tmp_path / "tessera.sqlite3")) as db:
        stored = db.execute("SELECT key_hash, scopes FROM core_apikey").fetchall()
    assert stored == [(api_key_hash(raw_key), '["finance"]')]


def test_seed_demo_skip_models_is_idempotent_with_one_user_per_role() -> None:
    # when
    run("seed_demo", "--skip-models")
    run("seed_demo", "--skip-models")
    # then
    org = Organization.objects.get(slug="demo")
    memberships = Membership.objects.filter(organization=org)
    assert sorted(memberships.values_list("role", flat=True)) == sorted(Role.values)
    assert sorted(memberships.values_list("user__username", flat=True)) == sorted(DEMO_USERS)
    assert Organization.objects.count() == 1
    for username, (_role, password) in DEMO_USERS.items():
        assert get_user_model().objects.get(username=username).check_password(password)

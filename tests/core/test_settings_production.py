"""Production settings: `check --deploy` passes, and they refuse to start half-configured."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

SECRET_KEY = "prod-" + "s8Gk2#pQ9!vR4^mW7&zT1*yL6%nB3@xH5$cJ0" * 2  # 50+ characters, varied
ALLOWED_HOSTS = "tessera.example.org"


def manage(tmp_path: Path, *args: str, **env_overrides: str | None) -> subprocess.CompletedProcess[str]:
    # A deployment's environment: none of the test run's service URLs, nor the async-safety
    # switch the browser tests set for Playwright.
    dropped = {"DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update({"DJANGO_ENV": "production", "VAR_DIR": str(tmp_path), "SECRET_KEY": SECRET_KEY})
    env["ALLOWED_HOSTS"] = ALLOWED_HOSTS
    for name, value in env_overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_deploy_passes_without_warnings(tmp_path: Path) -> None:
    # when
    result = manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING")
    # then
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"SECRET_KEY": None}, "needs SECRET_KEY"),
        ({"SECRET_KEY": "too-short"}, "needs SECRET_KEY"),
        ({"ALLOWED_HOSTS": None}, "needs ALLOWED_HOSTS"),
        ({"ALLOWED_HOSTS": " , "}, "needs ALLOWED_HOSTS"),
    ],
    ids=["no-secret-key", "short-secret-key", "no-allowed-hosts", "blank-allowed-hosts"],
)
def test_refuses_to_start_half_configured(tmp_path: Path, overrides: dict[str, str | None], message: str) -> None:
    # when
    result = manage(tmp_path, "check", **overrides)
    # then
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr

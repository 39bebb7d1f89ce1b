"""A throw-away PostgreSQL database with Django set up on it, for the benchmarks that need one."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PG_SERVER = "postgres://postgres@127.0.0.1:5432"


def _admin_sql(server_url: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(f"{server_url}/postgres", autocommit=True) as conn:
        conn.execute(statement)


@contextmanager
def django_on_throwaway_database(server_url: str, name: str) -> Iterator[tuple[Path, str]]:
    """Create database `<name>_<pid>` on `server_url`, set Django up on it (migrated, media in a
    temp VAR_DIR, jobs eager), yield (var_dir, database_url); drop it all again on exit."""
    server_url = server_url.rstrip("/")
    db_name = f"{name}_{os.getpid()}"
    _admin_sql(server_url, f'CREATE DATABASE "{db_name}"')
    try:
        with tempfile.TemporaryDirectory(prefix="tessera-bench-") as tmp:
            database_url = f"{server_url}/{db_name}"
            os.environ.update(
                VAR_DIR=tmp, DJANGO_ENV="test", CELERY_TASK_ALWAYS_EAGER="true", DATABASE_URL=database_url
            )
            os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings")
            import django

            django.setup()
            from django.core.management import call_command

            call_command("migrate", verbosity=0)
            yield Path(tmp), database_url
    finally:
        if "django.db" in sys.modules:  # let go of our connections before the database goes
            from django.db import connections

            connections.close_all()
        _admin_sql(server_url, f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')

"""PostgreSQL statements for the retail hot paths that the ORM makes slow: one array per column.

Used where thousands of rows go in at once (event batches, customers, a batch's attribution
log): `INSERT … SELECT … FROM unnest(%b::type[], …)` with the values bound in binary. Table and
column names come from the models' `_meta`; every value is a bound parameter.
"""

from __future__ import annotations

from typing import Any

from django.db import connection, models
from django.db.backends.utils import CursorWrapper


def binding_cursor() -> CursorWrapper:
    """A Django cursor whose parameters psycopg binds server-side (`%b`: in binary).

    Django's own psycopg cursor binds client-side, quoting each value into the SQL text: for the
    10,000-element arrays of a batch (timestamps, floats above all) that costs 3x the binary protocol.
    """
    import psycopg

    connection.ensure_connection()
    cursor: Any = psycopg.Cursor(connection.connection)  # on Django's connection: same transaction
    return connection.make_debug_cursor(cursor) if connection.queries_logged else connection.make_cursor(cursor)


def table_name(model: type[models.Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def column_of(model: type[models.Model], name: str) -> tuple[str, str]:
    """The quoted column of `model`'s field `name` ("pk": its primary key) and its database type."""
    field = model._meta.pk if name == "pk" else model._meta.get_field(name)
    assert isinstance(field, models.Field) and field.column, (model, name)
    return connection.ops.quote_name(field.column), str(field.db_type(connection))

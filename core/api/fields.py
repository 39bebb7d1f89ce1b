"""Serializer fields every API shares."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

# The largest BIGINT (SQLite INTEGER, PostgreSQL bigint). A larger number names no row, and the
# database drivers refuse it outright (an OverflowError, i.e. a 500) in foreign-key lookups,
# which Django does not guard as it guards plain integer lookups.
MAX_ROW_ID = 2**63 - 1


class RowIdField(serializers.IntegerField):
    """The id of a row (a filter or a reference in a body): an integer in 1..2**63-1, else a 400."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ROW_ID)
        super().__init__(**kwargs)

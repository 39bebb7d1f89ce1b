"""Registers the platform's admins; Django autodiscovers only `<app>/admin.py`.

Each package's admin lives beside it (`core/tenancy/admin.py`, `core/audit/admin.py`,
`core/jobs/admin.py`); the building blocks every app's admin uses are in `core/adminkit.py`.
"""

from __future__ import annotations

from core.audit import admin as audit_admin
from core.jobs import admin as jobs_admin
from core.tenancy import admin as tenancy_admin

__all__ = ["audit_admin", "jobs_admin", "tenancy_admin"]

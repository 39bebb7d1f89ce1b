"""Reading the PHI access log (org admins): filters per study, user, kind and time, and the CSV
export. Reading the log is itself audited (`medical.access_log.read`): who looked at who looked."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime

from django.db.models import Q, QuerySet

from apps.medical.choices import DOMAIN
from apps.medical.models import PhiAccess, PhiAccessStudy
from core.audit.services import audit_record
from core.tenancy.actors import Actor

CSV_COLUMNS = (
    "when",
    "who",
    "user_id",
    "api_key_id",
    "kind",
    "studies",
    "series",
    "instance",
    "path",
    "request_id",
    "ip_address",
)


@dataclass(frozen=True)
class AccessLogFilters:
    """What an access-log read matches; empty values match everything.

    `user` is a user id (digits), a username, or an actor label (`api-key:<prefix>`, `system`).
    """

    study: str = ""
    user: str = ""
    kind: str = ""
    since: datetime | None = None
    until: datetime | None = None


def access_log_read(*, actor: Actor, filters: AccessLogFilters, export: bool = False) -> QuerySet[PhiAccess]:
    """The organization's access rows matching `filters`, newest first (org admins; audited)."""
    actor.require_org_admin("read the PHI access log", key_scope=DOMAIN)
    rows = PhiAccess.objects.filter(organization=actor.organization).prefetch_related("studies")
    if filters.study:
        rows = rows.filter(
            pk__in=PhiAccessStudy.objects.filter(
                organization=actor.organization, study_instance_uid=filters.study
            ).values("access_id")
        )
    if filters.user:
        by_name = Q(actor_label=filters.user) | Q(actor_user__username=filters.user)
        is_id = filters.user.isdigit() and len(filters.user) <= 18  # a database integer, not any digit string
        rows = rows.filter(by_name | Q(actor_user_id=int(filters.user)) if is_id else by_name)
    if filters.kind:
        rows = rows.filter(kind=filters.kind)
    if filters.since is not None:
        rows = rows.filter(created_at__gte=filters.since)
    if filters.until is not None:
        rows = rows.filter(created_at__lt=filters.until)
    access_log_read_audit(actor=actor, filters=filters, export=export)
    return rows


def access_log_read_audit(*, actor: Actor, filters: AccessLogFilters, export: bool = False) -> None:
    """The audit event of one read of the access log (the back office, whose staff are checked
    by the admin site, writes it directly)."""
    details = {
        key: (value.isoformat() if isinstance(value, datetime) else value) for key, value in asdict(filters).items()
    }
    audit_record(
        actor=actor,
        action="medical.access_log.read",
        object_type="medical.phiaccess",
        details={"filters": {key: value for key, value in details.items() if value}, "export": export},
    )


class _Echo:
    """A file-like object whose write returns the line (csv.writer into a streamed response)."""

    def write(self, value: str) -> str:
        return value


def _cell(value: object) -> str:
    """A CSV cell a spreadsheet will not run as a formula (a username may start with `=`)."""
    text = str(value)
    return f"'{text}" if text[:1] in {"=", "+", "-", "@", "\t", "\r"} else text


def access_log_csv_lines(rows: Iterable[PhiAccess]) -> Iterator[str]:
    """The CSV lines of an access-log export, header first (one study UID list per row, space-separated)."""
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for row in rows:
        yield writer.writerow(
            _cell(value)
            for value in [
                row.created_at.isoformat(),
                row.actor_label,
                row.actor_user_id or "",
                row.actor_api_key_id or "",
                row.kind,
                " ".join(study.study_instance_uid for study in row.studies.all()),
                row.series_instance_uid,
                row.sop_instance_uid,
                row.path,
                row.request_id,
                row.ip_address or "",
            ]
        )

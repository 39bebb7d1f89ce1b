"""The append-only audit trail."""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone


class AuditOutcome(models.TextChoices):
    SUCCESS = "success", "Success"
    DENIED = "denied", "Denied"
    FAILURE = "failure", "Failure"


class AppendOnlyModel(models.Model):
    """Abstract base of a table whose rows are written once: `save()` of an existing row and
    `delete()` raise, and so do bulk `update()`/`delete()` through `AppendOnlyQuerySet`.

    Django's own cascades (SET_NULL when a user or key is deleted) go through the base manager,
    so they still work.
    """

    append_only_message: ClassVar[str] = "These rows are append-only."

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise PermissionError(self.append_only_message)
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise PermissionError(self.append_only_message)


class AppendOnlyQuerySet(models.QuerySet[Any]):
    """Bulk writes that would rewrite history are refused, like `save()` on an existing row."""

    def update(self, **kwargs: Any) -> int:
        raise PermissionError(self.model.append_only_message)

    def delete(self) -> tuple[int, dict[str, int]]:
        raise PermissionError(self.model.append_only_message)


class AuditEvent(AppendOnlyModel):
    """One recorded action: who, in which organization, did what to which object, when.

    Written in the same transaction as the change it records (see `core.audit.services`).
    Append-only: rows are never updated or deleted by the application or the admin.
    """

    organization = models.ForeignKey(
        "core.Organization", on_delete=models.PROTECT, related_name="audit_events", null=True, blank=True
    )
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_api_key = models.ForeignKey("core.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    actor_label = models.CharField(max_length=150)
    action = models.CharField(max_length=100, db_index=True)
    object_type = models.CharField(max_length=100, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    outcome = models.CharField(max_length=16, choices=AuditOutcome.choices, default=AuditOutcome.SUCCESS)
    request_id = models.CharField(max_length=64, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True, editable=False)

    append_only_message = "Audit events are append-only."
    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "object_type", "object_id"])]

    def __str__(self) -> str:
        return (
            f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action} {self.object_type}:{self.object_id}"
        )

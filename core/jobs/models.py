"""The Job row: the source of truth for asynchronous work (Celery is only the transport)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from core.jobs.choices import JobQueue, JobStatus


class Job(models.Model):
    """One unit of background work with its status, progress, heartbeat and outcome.

    Life cycle: queued → running → succeeded | failed | cancelled. A worker claims the row
    atomically (see `core.jobs.runner.job_claim`); `claimed_by` names the claiming execution
    and only that execution may write the outcome, so a job re-delivered after a crash
    finishes exactly once.

    `domain` says who may see the job (`core.jobs.selectors.jobs_visible`): a business domain
    (`finance`, `traffic`, `medical`, `retail`) or `platform`. `job_enqueue` always sets it; the
    field has no default on purpose, so a row made any other way has domain "" and is visible
    to org admins only (fail closed: a medical job's result is patient data).
    """

    organization = models.ForeignKey("core.Organization", on_delete=models.CASCADE, related_name="jobs")
    kind = models.CharField(max_length=100, db_index=True)
    # No choices: the domains derive from `Scope` (JOB_DOMAINS) and are validated by the runner.
    domain = models.CharField(max_length=32)
    queue = models.CharField(max_length=32, choices=JobQueue.choices, default=JobQueue.DEFAULT)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True)
    progress = models.FloatField(default=0.0)
    message = models.CharField(max_length=500, blank=True)
    params = models.JSONField(default=dict, blank=True)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=3)
    celery_task_id = models.CharField(max_length=64, blank=True)
    claimed_by = models.CharField(max_length=128, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_api_key = models.ForeignKey(
        "core.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "-created_at"]),
            models.Index(fields=["organization", "domain", "-created_at"]),
            models.Index(fields=["status", "heartbeat_at"]),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(progress__gte=0.0, progress__lte=1.0), name="job_progress_0_1"),
            models.CheckConstraint(condition=models.Q(status__in=JobStatus.values), name="job_status_valid"),
        ]

    def __str__(self) -> str:
        return f"Job {self.pk} {self.kind} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}

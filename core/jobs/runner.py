"""Defining, enqueuing and executing jobs.

Domain code defines a job function once and enqueues it from a service:

    @job_function("finance.batch_score", queue=JobQueue.INFERENCE)
    def batch_score(ctx: JobContext) -> dict:
        for i, chunk in enumerate(chunks):
            ...
            ctx.report(progress=(i + 1) / n, message=f"{i + 1}/{n} chunks")
        return {"rows": n_rows}

    job = job_enqueue(actor=actor, kind="finance.monitoring", params={"model": name})

Domains. Every job belongs to a domain (`finance`, `traffic`, `medical`, `retail`) or to the
platform, and is shown only to actors who may see that domain (`core.jobs.selectors`). The kind's
prefix names the default domain (`finance.batch_score` → finance; `core.countdown`, `ml.train`
→ platform, `ml` being no domain); `job_function(..., domain=...)` changes a kind's default and
`job_enqueue(..., domain=...)` one job's, e.g. a training job takes the domain of the kind it
trains (`job_domain_of("finance.credit_xgboost")`).

A job whose params name a domain row that points at the job. The row's FK to its job is
non-null, so the job is created first; the params follow with `job_params_set`, in the same
transaction, before the commit sends the job (never patch `job.params` by hand):

    with transaction.atomic():
        job = job_enqueue(actor=actor, kind="finance.batch_score")
        batch = ScoringBatch.objects.create(organization=actor.organization, job=job, ...)
        job_params_set(job=job, params={"batch_id": batch.pk})

Params known up front go straight to `job_enqueue(params=...)`.

Guarantees (ARCHITECTURE.md, "Jobs"):
- enqueue happens on transaction commit, so a worker never sees a job row that rolled back,
  nor params that were not yet set;
- `job_claim` is atomic: a delivery of a finished job is dropped, a delivery of a job whose
  owner still heartbeats is dropped, a job whose heartbeat is stale is taken over;
- only the claiming execution can write the outcome (`claimed_by` token), so a job that ran
  twice after a crash records one result; domain result rows must be keyed by the job too;
- known transient errors are retried with backoff, anything else fails the job with its error.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from core.audit.models import AuditOutcome
from core.audit.services import audit_record
from core.jobs.choices import BUSINESS_DOMAINS, JOB_DOMAINS, PLATFORM_DOMAIN, TERMINAL_STATUSES, JobQueue, JobStatus
from core.jobs.models import Job
from core.telemetry.recording import job_record
from core.tenancy.actors import Actor

logger = logging.getLogger(__name__)


class TransientJobError(Exception):
    """Raise from a job function for an error worth retrying (a flaky dependency)."""


class JobCancelled(Exception):
    """Raised inside a job function by `report()` once the job has been cancelled."""


JobFn = Callable[["JobContext"], dict[str, Any] | None]


@dataclass(frozen=True)
class JobSpec:
    """A registered job function and how to run it."""

    kind: str
    fn: JobFn
    queue: str
    domain: str
    max_attempts: int
    retry_on: tuple[type[BaseException], ...]
    backoff_seconds: int


_REGISTRY: dict[str, JobSpec] = {}


def job_domain_of(name: str) -> str:
    """The domain a dotted name (`finance.batch_score`, `traffic.yolo_detector`) belongs to.

    The part before the first dot when it names a business domain, else `platform`.
    """
    prefix = name.partition(".")[0]
    return prefix if prefix in BUSINESS_DOMAINS else PLATFORM_DOMAIN


def _domain_checked(domain: str) -> str:
    if domain not in JOB_DOMAINS:
        raise ValueError(f"Unknown job domain {domain!r}; expected one of {', '.join(sorted(JOB_DOMAINS))}.")
    return domain


def job_function(
    kind: str,
    *,
    queue: str = JobQueue.DEFAULT,
    domain: str | None = None,
    max_attempts: int | None = None,
    retry_on: tuple[type[BaseException], ...] = (),
    backoff_seconds: int = 5,
) -> Callable[[JobFn], JobFn]:
    """Register `fn` as the implementation of job kind `kind` (decorator).

    `domain` is the default domain of the kind's jobs (see the module docstring); None means
    `job_domain_of(kind)`.
    """
    default_domain = _domain_checked(domain if domain is not None else job_domain_of(kind))

    def register(fn: JobFn) -> JobFn:
        if kind in _REGISTRY and _REGISTRY[kind].fn is not fn:
            raise RuntimeError(f"Job kind {kind!r} is registered twice.")
        _REGISTRY[kind] = JobSpec(
            kind=kind,
            fn=fn,
            queue=str(queue),
            domain=default_domain,
            max_attempts=max_attempts or settings.JOB_MAX_ATTEMPTS,
            retry_on=(TransientJobError, *retry_on),
            backoff_seconds=backoff_seconds,
        )
        return fn

    return register


def job_spec(kind: str) -> JobSpec:
    try:
        return _REGISTRY[kind]
    except KeyError as exc:
        raise LookupError(f"No job function registered for kind {kind!r}.") from exc


def job_enqueue(*, actor: Actor, kind: str, params: dict[str, Any] | None = None, domain: str | None = None) -> Job:
    """Create the Job row and send it to its queue when the surrounding transaction commits.

    `domain` overrides the kind's default domain for this job (it must be a known one, see
    `core.jobs.choices.JOB_DOMAINS`); it decides who may see the job and its result.
    """
    spec = job_spec(kind)
    job = Job.objects.create(
        organization=actor.organization,
        kind=kind,
        domain=_domain_checked(domain) if domain is not None else spec.domain,
        queue=spec.queue,
        params=params or {},
        max_attempts=spec.max_attempts,
        created_by=actor.user,
        created_by_api_key=actor.api_key,
        celery_task_id=uuid.uuid4().hex,
    )
    transaction.on_commit(lambda: job_send(job_id=job.pk))
    return job


def job_params_set(*, job: Job, params: dict[str, Any]) -> Job:
    """Set the params of a job enqueued in the current transaction, before the commit sends it.

    For params that name a row created after the job (see the module docstring). Raises
    RuntimeError once the job has been sent or has started: a worker may already have read the
    old params (outside a transaction, `job_enqueue` sends at once, so call both inside one).
    """
    updated = Job.objects.filter(pk=job.pk, status=JobStatus.QUEUED, enqueued_at__isnull=True, attempts=0).update(
        params=params, updated_at=timezone.now()
    )
    if not updated:
        raise RuntimeError(f"Job {job.pk} was already sent; its params can no longer change.")
    job.params = params
    return job


def job_send(*, job_id: int, countdown: float | None = None) -> None:
    """Publish the job's task message (also used to re-send stale jobs)."""
    from core.jobs.tasks import run_job

    job = Job.objects.get(pk=job_id)
    soft, hard = settings.JOB_QUEUE_TIME_LIMITS.get(job.queue, settings.JOB_QUEUE_TIME_LIMITS["default"])
    Job.objects.filter(pk=job_id).update(enqueued_at=timezone.now())
    options: dict[str, Any] = {"queue": job.queue, "soft_time_limit": soft, "time_limit": hard}
    if countdown:
        options["countdown"] = countdown
    run_job.apply_async(args=(job.pk,), task_id=job.celery_task_id or None, **options)


# --- Execution -------------------------------------------------------------------------------------


def _execution_token() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def job_claim(*, job_id: int, token: str) -> Job | None:
    """Atomically take the job for execution `token`, or return None when this delivery must be dropped."""
    stale_after = timedelta(seconds=settings.JOB_STALE_SECONDS)
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.status in TERMINAL_STATUSES:
            return None
        now = timezone.now()
        if job.status == JobStatus.RUNNING and job.heartbeat_at and now - job.heartbeat_at < stale_after:
            return None  # its owner is alive: this is a duplicate delivery
        if job.attempts >= job.max_attempts:
            job.status = JobStatus.FAILED
            job.error = job.error or f"Gave up after {job.attempts} attempts (worker lost or restarted)."
            job.finished_at = now
            job.save(update_fields=["status", "error", "finished_at", "updated_at"])
            audit_record(
                actor=Actor.system(job.organization, user=job.created_by),
                action=f"core.job.{JobStatus.FAILED}",
                obj=job,
                outcome=AuditOutcome.FAILURE,
                details={"kind": job.kind, "attempts": job.attempts},
            )
            return None
        takeover = job.status == JobStatus.RUNNING
        retry = not takeover and job.attempts > 0
        job.status = JobStatus.RUNNING
        job.attempts += 1
        job.claimed_by = token
        job.started_at = job.started_at or now
        job.heartbeat_at = now
        if takeover:
            job.message = f"Resumed on another worker (attempt {job.attempts})."
        elif retry:
            job.message = f"Retrying (attempt {job.attempts} of {job.max_attempts})."
        job.save(
            update_fields=["status", "attempts", "claimed_by", "started_at", "heartbeat_at", "message", "updated_at"]
        )
        return job


@dataclass
class JobContext:
    """What a running job function sees: its job, its params, and `report()` for progress."""

    job: Job
    token: str
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def params(self) -> dict[str, Any]:
        return self.job.params

    @property
    def actor(self) -> Actor:
        return Actor.system(self.job.organization, user=self.job.created_by)

    def report(self, progress: float | None = None, message: str | None = None) -> None:
        """Record progress (0..1) and a status line; raises JobCancelled once the job is cancelled."""
        updates: dict[str, Any] = {"heartbeat_at": timezone.now()}
        if progress is not None:
            updates["progress"] = min(max(float(progress), 0.0), 1.0)
            self.job.progress = updates["progress"]
        if message is not None:
            updates["message"] = message[:500]
            self.job.message = updates["message"]
        updated = Job.objects.filter(pk=self.job.pk, claimed_by=self.token, status=JobStatus.RUNNING).update(**updates)
        if not updated:
            raise JobCancelled(f"Job {self.job.pk} was cancelled or taken over.")


class _Heartbeat(threading.Thread):
    """Keeps `heartbeat_at` fresh while a long job function runs without reporting."""

    def __init__(self, job_id: int, token: str) -> None:
        super().__init__(name=f"job-{job_id}-heartbeat", daemon=True)
        self.job_id, self.token = job_id, token
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(settings.JOB_HEARTBEAT_SECONDS):
                Job.objects.filter(pk=self.job_id, claimed_by=self.token, status=JobStatus.RUNNING).update(
                    heartbeat_at=timezone.now()
                )
        except Exception:  # pragma: no cover - never let the heartbeat kill the worker
            logger.exception("Heartbeat for job %s failed", self.job_id)
        finally:
            connection.close()


@dataclass(frozen=True)
class Outcome:
    """What `job_execute` did with one delivery."""

    ran: bool
    status: str | None = None
    retry_in: int | None = None


def job_execute(*, job_id: int) -> Outcome:
    """Claim and run one delivery of a job. Called by the Celery task (and the eager path)."""
    token = _execution_token()
    job = job_claim(job_id=job_id, token=token)
    if job is None:
        logger.info("Job %s: delivery dropped (finished, or running elsewhere).", job_id)
        return Outcome(ran=False)
    started = time.perf_counter()
    outcome: Outcome | None = None
    try:
        outcome = _job_run_claimed(job=job, token=token)
        return outcome
    finally:
        job_record(
            organization_id=job.organization_id,
            queue=job.queue,
            kind=job.kind,
            outcome=_outcome_label(outcome),
            seconds=time.perf_counter() - started,
        )


def _outcome_label(outcome: Outcome | None) -> str:
    """The telemetry label of one execution: its final status, `retry`, or `superseded`
    (cancelled or taken over while it ran); `error` when the runner itself raised."""
    if outcome is None:
        return "error"
    if outcome.status == JobStatus.QUEUED:
        return "retry"
    return str(outcome.status) if outcome.status else "superseded"


def _job_run_claimed(*, job: Job, token: str) -> Outcome:
    spec = job_spec(job.kind)
    ctx = JobContext(job=job, token=token)
    heartbeat = _Heartbeat(job.pk, token)
    heartbeat.start()
    try:
        result = spec.fn(ctx) or {}
    except JobCancelled:
        return Outcome(ran=True, status=JobStatus.CANCELLED)
    except spec.retry_on as exc:
        if job.attempts < job.max_attempts:
            delay = spec.backoff_seconds * 2 ** (job.attempts - 1)
            # Only while this execution still owns a running job: a job cancelled (or taken
            # over) meanwhile must not be put back in the queue.
            requeued = Job.objects.filter(pk=job.pk, claimed_by=token, status=JobStatus.RUNNING).update(
                status=JobStatus.QUEUED, message=f"Transient error, retrying in {delay}s: {exc}"[:500]
            )
            if not requeued:
                return Outcome(ran=True)
            return Outcome(ran=True, status=JobStatus.QUEUED, retry_in=delay)
        _job_finish(job=job, token=token, status=JobStatus.FAILED, error=_describe(exc))
        return Outcome(ran=True, status=JobStatus.FAILED)
    except Exception as exc:
        logger.exception("Job %s (%s) failed", job.pk, job.kind)
        _job_finish(job=job, token=token, status=JobStatus.FAILED, error=_describe(exc))
        return Outcome(ran=True, status=JobStatus.FAILED)
    finally:
        heartbeat.stopped.set()
    status = _job_finish(job=job, token=token, status=JobStatus.SUCCEEDED, result=result)
    return Outcome(ran=True, status=status)


def _describe(exc: BaseException) -> str:
    from core.errors import DomainError

    if isinstance(exc, DomainError):
        return exc.message
    lines = traceback.format_exception_only(type(exc), exc)
    return "".join(lines).strip()[:4000]


def _job_finish(
    *, job: Job, token: str, status: str, result: dict[str, Any] | None = None, error: str = ""
) -> str | None:
    """Write the outcome if this execution still owns the job; audit it in the same transaction."""
    with transaction.atomic():
        current = Job.objects.select_for_update().filter(pk=job.pk).first()
        if current is None or current.claimed_by != token or current.status != JobStatus.RUNNING:
            return None  # cancelled or taken over meanwhile: the other outcome stands
        now = timezone.now()
        current.status = status
        current.finished_at = now
        current.heartbeat_at = now
        current.error = error
        if status == JobStatus.SUCCEEDED:
            current.progress = 1.0
            current.result = result
            current.message = current.message if current.message else "Done."
        current.save(
            update_fields=[
                "status",
                "finished_at",
                "heartbeat_at",
                "error",
                "progress",
                "result",
                "message",
                "updated_at",
            ]
        )
        audit_record(
            actor=Actor.system(current.organization, user=current.created_by),
            action=f"core.job.{status}",
            obj=current,
            outcome=AuditOutcome.SUCCESS if status == JobStatus.SUCCEEDED else AuditOutcome.FAILURE,
            details={"kind": current.kind, "attempts": current.attempts},
        )
    return status


def jobs_requeue_stale() -> list[int]:
    """Re-send jobs whose worker died (stale heartbeat) or whose message was lost.

    Safe to run anywhere, any time: the claim drops deliveries that are not needed.
    """
    close_old_connections()
    now = timezone.now()
    stale = now - timedelta(seconds=settings.JOB_STALE_SECONDS)
    lost = now - timedelta(seconds=max(settings.JOB_STALE_SECONDS * 10, 3600))
    job_ids = list(
        Job.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=stale).values_list("pk", flat=True)
    ) + list(Job.objects.filter(status=JobStatus.QUEUED, enqueued_at__lt=lost).values_list("pk", flat=True))
    for job_id in job_ids:
        logger.warning("Re-sending job %s (stale heartbeat or lost message).", job_id)
        job_send(job_id=job_id)
    return job_ids

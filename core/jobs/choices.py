from django.db import models

from core.tenancy.choices import Scope


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


TERMINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


class JobQueue(models.TextChoices):
    DEFAULT = "default", "default"
    TRAINING = "training", "training"
    INFERENCE = "inference", "inference"


# A job belongs to one domain, or to the platform (`core.countdown`, maintenance jobs, training of
# a kind that names no domain). The domains are the API scopes that name an industry; `ml` is a
# capability (the model registry), not a domain: a training job belongs to the domain of the kind
# it trains, because its result and live metrics describe that domain's data.
PLATFORM_DOMAIN = "platform"
BUSINESS_DOMAINS: frozenset[str] = frozenset(scope for scope in Scope.values if scope != Scope.ML)
JOB_DOMAINS: frozenset[str] = BUSINESS_DOMAINS | {PLATFORM_DOMAIN}

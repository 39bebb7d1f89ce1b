"""Model registry of the `core` app: tenancy, audit and jobs live in their own modules."""

from core.audit.models import AuditEvent, AuditOutcome
from core.jobs.models import Job
from core.telemetry.models import HttpRollup, JobRollup, ProcessHeartbeat
from core.tenancy.models import ApiKey, Membership, Organization, TimeStampedModel

__all__ = [
    "ApiKey",
    "AuditEvent",
    "AuditOutcome",
    "HttpRollup",
    "Job",
    "JobRollup",
    "Membership",
    "Organization",
    "ProcessHeartbeat",
    "TimeStampedModel",
]

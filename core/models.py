"""Model registry of the `core` app: tenancy, audit and jobs live in their own modules."""

from core.audit.models import AuditEvent, AuditOutcome
from core.jobs.models import Job
from core.tenancy.models import ApiKey, Membership, Organization, TimeStampedModel

__all__ = ["ApiKey", "AuditEvent", "AuditOutcome", "Job", "Membership", "Organization", "TimeStampedModel"]

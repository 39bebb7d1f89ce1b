"""Retail rows: the catalogue, customers, their interaction events, per-organization settings,
the A/B traffic split per model, and the log of every recommendation answer (attribution).

Every row belongs to one organization; items and customers are addressed by the merchant's own
ids (`external_id`), unique per organization only, so another organization's ids mean nothing here.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from apps.retail.choices import DEFAULT_FALLBACK_DAYS, RecommendationKind
from core.tenancy.models import TimeStampedModel


class Item(TimeStampedModel):
    """One catalogue item. Inactive or expired (`available_until` passed) items are never recommended."""

    organization = models.ForeignKey("core.Organization", on_delete=models.CASCADE, related_name="retail_items")
    external_id = models.CharField(max_length=200)
    title = models.CharField(max_length=500, blank=True)
    categories = models.JSONField(default=list, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    active = models.BooleanField(default=True)
    available_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["external_id"]
        constraints = [models.UniqueConstraint(fields=["organization", "external_id"], name="retail_item_unique_id")]
        indexes = [models.Index(fields=["organization", "-created_at"], name="retail_item_org_created")]

    def __str__(self) -> str:
        return f"{self.external_id} {self.title}".strip()

    def is_available(self, now: object = None) -> bool:
        moment = now or timezone.now()
        return self.active and (self.available_until is None or self.available_until > moment)  # type: ignore[operator]


class ItemCategory(models.Model):
    """An item's category, one row each, so the category filter is an indexed lookup on every database."""

    organization = models.ForeignKey("core.Organization", on_delete=models.CASCADE, related_name="+")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="category_rows")
    name = models.CharField(max_length=200)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["item", "name"], name="retail_item_category_unique")]
        indexes = [models.Index(fields=["organization", "name"], name="retail_category_org_name")]

    def __str__(self) -> str:
        return self.name


class Customer(models.Model):
    """A shop customer, created the first time one of their events arrives."""

    organization = models.ForeignKey("core.Organization", on_delete=models.CASCADE, related_name="retail_customers")
    external_id = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["external_id"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "external_id"], name="retail_customer_unique_id")
        ]

    def __str__(self) -> str:
        return self.external_id


class Event(models.Model):
    """One interaction (view, click, cart, purchase, rating or a custom type); idempotent by `event_id`.

    `recomm_id` attributes the event to the recommendation answer that led to it.
    """

    # No single-column indexes on organization and customer: `retail_event_unique_id` and
    # `retail_event_customer_ts` lead with them and serve every lookup (and cascade) they would;
    # each index is paid on every ingested event.
    organization = models.ForeignKey(
        "core.Organization", on_delete=models.CASCADE, related_name="retail_events", db_index=False
    )
    event_id = models.CharField(max_length=200)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="events", db_index=False)
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="events")
    type = models.CharField(max_length=50)
    value = models.FloatField(null=True, blank=True)
    timestamp = models.DateTimeField()
    recomm_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-timestamp", "-id"]
        constraints = [models.UniqueConstraint(fields=["organization", "event_id"], name="retail_event_unique_id")]
        indexes = [
            models.Index(fields=["customer", "timestamp"], name="retail_event_customer_ts"),
            models.Index(fields=["organization", "timestamp"], name="retail_event_org_ts"),
            models.Index(fields=["recomm_id"], name="retail_event_recomm"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.item_id} by {self.customer_id}"


class RetailSettings(TimeStampedModel):
    """Per-organization settings: the confidence each event type adds, and the fallback window."""

    organization = models.OneToOneField("core.Organization", on_delete=models.CASCADE, related_name="retail_settings")
    event_weights = models.JSONField(default=dict, blank=True)
    fallback_days = models.PositiveIntegerField(default=DEFAULT_FALLBACK_DAYS)
    # +1 whenever stored events are removed (an item deleted with its events): a version's stored
    # interaction rows stand for the live ones only while this is what it was trained at
    history_revision = models.PositiveIntegerField(default=0, editable=False)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name_plural = "retail settings"

    def __str__(self) -> str:
        return f"Retail settings of {self.organization}"


class TrafficSplit(TimeStampedModel):
    """How a model's recommendation traffic is shared between its aliases (percentages, sticky per customer)."""

    organization = models.ForeignKey("core.Organization", on_delete=models.CASCADE, related_name="+")
    model_name = models.CharField(max_length=100)
    weights = models.JSONField(default=dict)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["model_name"]
        constraints = [models.UniqueConstraint(fields=["organization", "model_name"], name="retail_split_unique_model")]

    def __str__(self) -> str:
        return f"{self.model_name}: {self.weights}"


class Recommendation(models.Model):
    """One recommendation answer: what was shown, to whom, by which version and alias (`recomm_id`).

    The model fields are empty when no model served (the fallback answered alone).
    """

    recomm_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # `retail_recomm_org_model` leads with the organization: no index of its own (one fewer per answer logged)
    organization = models.ForeignKey("core.Organization", on_delete=models.CASCADE, related_name="+", db_index=False)
    kind = models.CharField(max_length=16, choices=RecommendationKind.choices)
    customer_external_id = models.CharField(max_length=200, blank=True)
    item_external_id = models.CharField(max_length=200, blank=True)  # the seed of a similar-items answer
    model_version = models.ForeignKey(
        "ml.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    model_name = models.CharField(max_length=100, blank=True)
    model_version_number = models.PositiveIntegerField(null=True, blank=True)
    alias = models.CharField(max_length=50, blank=True)
    items = models.JSONField(default=list)
    sources = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization", "model_name", "created_at"], name="retail_recomm_org_model")]

    def __str__(self) -> str:
        return f"{self.recomm_id} ({self.model_name} v{self.model_version_number})"


class RetailImport(TimeStampedModel):
    """A CSV upload of items or events processed as a job: counts and the first error rows."""

    organization = models.ForeignKey("core.Organization", on_delete=models.CASCADE, related_name="+")
    job = models.OneToOneField("core.Job", on_delete=models.CASCADE, related_name="+")
    target = models.CharField(max_length=16)  # items | events
    file_path = models.CharField(max_length=500)
    file_size = models.BigIntegerField()
    rows = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    refused = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.target} import {self.pk}"


class RecommendationExport(TimeStampedModel):
    """A precomputed top-N for every customer, written to a CSV by a job (e-mail campaigns)."""

    organization = models.ForeignKey("core.Organization", on_delete=models.CASCADE, related_name="+")
    job = models.OneToOneField("core.Job", on_delete=models.CASCADE, related_name="+")
    model_name = models.CharField(max_length=100, blank=True)
    model_version_number = models.PositiveIntegerField(null=True, blank=True)
    n = models.PositiveIntegerField(default=10)
    file_path = models.CharField(max_length=500, blank=True)
    customers = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Top-{self.n} export {self.pk}"

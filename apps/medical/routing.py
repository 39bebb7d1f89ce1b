"""Routing rules: analyse every new study of the right kind on receipt, whatever way it arrived.

A rule names series criteria (modality, body part, a series description pattern; empty matches
anything) and a classifier with the alias to run. Every receiving path (STOW-RS, the portal
upload, the DICOM listener at the end of an association) calls `studies_received_on_receipt`
with the studies that got new instances; for each active rule matching a series of a study, one
analysis per (study, model) is enqueued, unless one is already queued for that study and model: a
study sent in several requests or associations does not pile up analyses, and the queued one
reads every instance that arrived before it starts. Instances that arrive while an analysis of
their study is *running* (it listed the study's instances when it started) get one follow-up
analysis, queued once: it reads the whole study again, the new instances included, and further
receipts while it waits add nothing.

Only series holding a readable image match (`analysis.analysable_series`): the archive's AI
results (received via `ai`), SRs and other non-image series never trigger a rule, so an
analysis' own output cannot start another analysis.

Receiving must never fail because of routing: `studies_received_on_receipt` logs and continues.

The description pattern is a Python regular expression chosen by an org admin; patterns are
limited to 200 characters, and descriptions (LO) to 64, which bounds what a pattern can cost.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from apps.medical.analysis import (
    SeriesCriteria,
    analysable_series,
    analysis_create,
    classifier_version_for_alias,
)
from apps.medical.choices import DOMAIN, AnalysisTrigger
from apps.medical.models import Analysis, Instance, RoutingRule, Series, Study
from apps.medical.services import StoreOutcome, StoreStatus
from core.audit.services import audit_record
from core.errors import Conflict, DomainError, NotFound, ValidationFailed
from core.jobs.choices import JobStatus
from core.tenancy.actors import Actor
from core.tenancy.models import Organization
from ml.models import RegisteredModel, alias_name_validator

logger = logging.getLogger(__name__)

RULE_FIELDS = ("name", "modality", "body_part", "series_description_pattern", "registered_model", "alias", "active")
NAME_TAKEN = "A routing rule with this name already exists."
_CS = re.compile(r"^[A-Z0-9_ ]*$")  # PS3.5 CS: upper-case letters, digits, space, underscore
CS_MAX_LENGTH = 16
PATTERN_MAX_LENGTH = 200


# --- Reads ------------------------------------------------------------------------------------------


def routing_rule_list(*, org: Organization) -> QuerySet[RoutingRule]:
    return RoutingRule.objects.filter(organization=org).select_related("registered_model").order_by("name", "id")


def routing_rule_get(*, org: Organization, rule_id: int) -> RoutingRule:
    rule = routing_rule_list(org=org).filter(pk=rule_id).first()
    if rule is None:
        raise NotFound("Routing rule not found.")
    return rule


# --- Writes -----------------------------------------------------------------------------------------


def _code_string(value: str, field: str) -> str:
    """A CS value as rules compare it: stripped, upper case, at most 16 CS characters."""
    cleaned = value.strip().upper()
    if len(cleaned) > CS_MAX_LENGTH or not _CS.match(cleaned):
        message = f"At most {CS_MAX_LENGTH} letters, digits, spaces or underscores (a DICOM code string)."
        raise ValidationFailed(message, fields={field: [message]})
    return cleaned


def _pattern(value: str) -> str:
    if len(value) > PATTERN_MAX_LENGTH:
        message = f"At most {PATTERN_MAX_LENGTH} characters."
        raise ValidationFailed(message, code="invalid_pattern", fields={"series_description_pattern": [message]})
    try:
        re.compile(value, re.IGNORECASE)
    except re.error as exc:
        message = f"Not a valid regular expression: {exc}."
        raise ValidationFailed(
            message, code="invalid_pattern", fields={"series_description_pattern": [message]}
        ) from None
    return value


def _name(value: str) -> str:
    name = value.strip()
    if not name or len(name) > 100:
        message = "A name of 1 to 100 characters."
        raise ValidationFailed(message, fields={"name": [message]})
    return name


def _alias(value: str) -> str:
    try:
        alias_name_validator(value)
    except DjangoValidationError as exc:
        raise ValidationFailed("Invalid alias.", code="unknown_alias", fields={"alias": list(exc.messages)}) from None
    return value


def routing_rule_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of `values` (any of RULE_FIELDS) as a rule stores them, or ValidationFailed
    naming the bad ones (for forms that check before saving; the services check again)."""
    return _cleaned(values)


def _cleaned(values: Mapping[str, Any]) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    if "name" in values:
        cleaned["name"] = _name(str(values["name"]))
    if "modality" in values:
        cleaned["modality"] = _code_string(str(values["modality"] or ""), "modality")
    if "body_part" in values:
        cleaned["body_part"] = _code_string(str(values["body_part"] or ""), "body_part")
    if "series_description_pattern" in values:
        cleaned["series_description_pattern"] = _pattern(str(values["series_description_pattern"] or ""))
    if "alias" in values:
        cleaned["alias"] = _alias(str(values["alias"]))
    if "active" in values:
        cleaned["active"] = bool(values["active"])
    if "registered_model" in values:
        cleaned["registered_model"] = values["registered_model"]
    return cleaned


def routing_rule_model_check(*, actor: Actor, registered_model: RegisteredModel, alias: str) -> None:
    """The model is `actor`'s organization's image classifier and `alias` points at one of its versions.

    Raises:
        NotFound: another organization's model.
        ValidationFailed: `wrong_model_kind`, `unknown_alias`.
    """
    classifier_version_for_alias(actor=actor, registered_model=registered_model, alias=alias)


def _model_checked(actor: Actor, model: RegisteredModel, alias: str) -> None:
    routing_rule_model_check(actor=actor, registered_model=model, alias=alias)


def _name_taken(org: Organization, name: str, *, exclude_pk: int | None = None) -> bool:
    rules = RoutingRule.objects.filter(organization=org, name=name)
    if exclude_pk is not None:
        rules = rules.exclude(pk=exclude_pk)
    return rules.exists()


def _rule_save(rule: RoutingRule, **kwargs: Any) -> None:
    """Save, turning the unique name's race (two creates at once) into the 409."""
    try:
        with transaction.atomic():
            rule.save(**kwargs)
    except IntegrityError:
        raise Conflict(NAME_TAKEN, code="name_taken", fields={"name": [NAME_TAKEN]}) from None


def _details(rule: RoutingRule) -> dict[str, Any]:
    return {
        "name": rule.name,
        "modality": rule.modality,
        "body_part": rule.body_part,
        "series_description_pattern": rule.series_description_pattern,
        "model": rule.registered_model.name,
        "alias": rule.alias,
        "active": rule.active,
    }


@transaction.atomic
def routing_rule_create(
    *,
    actor: Actor,
    name: str,
    registered_model: RegisteredModel,
    modality: str = "",
    body_part: str = "",
    series_description_pattern: str = "",
    alias: str = "production",
    active: bool = True,
) -> RoutingRule:
    """A new rule (org admins or keys with the `medical` scope; audited).

    Raises:
        PermissionDenied: not an org admin.
        NotFound: the model belongs to another organization.
        ValidationFailed: a field is invalid (`invalid_pattern` for a bad regular expression),
            the model is not an image classifier (`wrong_model_kind`), the alias does not exist.
        Conflict: `name_taken`.
    """
    actor.require_org_admin("manage routing rules", key_scope=DOMAIN)
    values = _cleaned(
        {
            "name": name,
            "modality": modality,
            "body_part": body_part,
            "series_description_pattern": series_description_pattern,
            "alias": alias,
            "active": active,
        },
    )
    _model_checked(actor, registered_model, values["alias"])
    if _name_taken(actor.organization, values["name"]):
        raise Conflict(NAME_TAKEN, code="name_taken", fields={"name": [NAME_TAKEN]})
    rule = RoutingRule(
        organization=actor.organization, registered_model=registered_model, created_by=actor.user, **values
    )
    _rule_save(rule)
    audit_record(actor=actor, action="medical.routing_rule.create", obj=rule, details=_details(rule))
    return rule


@transaction.atomic
def routing_rule_update(*, actor: Actor, rule: RoutingRule, data: Mapping[str, Any]) -> RoutingRule:
    """Change the fields of `data` (any of RULE_FIELDS; `registered_model` a RegisteredModel)."""
    actor.require_org_admin("manage routing rules", key_scope=DOMAIN)
    rule = (
        RoutingRule.objects.select_for_update()
        .select_related("registered_model")
        .get(pk=rule.pk, organization=actor.organization)
    )
    cleaned = _cleaned(data)
    changed = [key for key in RULE_FIELDS if key in cleaned and getattr(rule, key) != cleaned[key]]
    if "registered_model" in changed or "alias" in changed:
        _model_checked(actor, cleaned.get("registered_model", rule.registered_model), cleaned.get("alias", rule.alias))
    if "name" in changed and _name_taken(actor.organization, cleaned["name"], exclude_pk=rule.pk):
        raise Conflict(NAME_TAKEN, code="name_taken", fields={"name": [NAME_TAKEN]})
    before = {key: _plain(getattr(rule, key)) for key in changed}
    for key in changed:
        setattr(rule, key, cleaned[key])
    if changed:
        _rule_save(rule, update_fields=[*changed, "updated_at"])
    audit_record(
        actor=actor,
        action="medical.routing_rule.update",
        obj=rule,
        details={"changed": changed, "before": before, **_details(rule)},
    )
    return rule


def _plain(value: Any) -> Any:
    return value.name if isinstance(value, RegisteredModel) else value


@transaction.atomic
def routing_rule_delete(*, actor: Actor, rule: RoutingRule) -> None:
    """Remove a rule; the analyses it started stay (their `routing_rule` becomes empty)."""
    actor.require_org_admin("manage routing rules", key_scope=DOMAIN)
    audit_record(actor=actor, action="medical.routing_rule.delete", obj=rule, details=_details(rule))
    rule.delete()


# --- On receipt ------------------------------------------------------------------------------------


def studies_received(*, actor: Actor, study_ids: Iterable[int]) -> list[Analysis]:
    """Enqueue the analyses the organization's active rules ask for on these (new) studies.

    One analysis per (study, model): the first matching rule by name decides the alias, and a
    study that already has a queued or running analysis by that model gets none. Each study is
    handled in its own transaction with its row locked, so two requests finishing at once for
    the same study enqueue one analysis.

    Returns:
        The analyses created. A rule whose model can no longer run (alias removed, the study's
        matching series hold nothing readable) is logged and skipped.
    """
    org = actor.organization
    rules = list(routing_rule_list(org=org).filter(active=True))
    if not rules:
        return []
    created: list[Analysis] = []
    for study_id in sorted(set(study_ids)):
        with transaction.atomic():
            study = Study.objects.select_for_update().filter(organization=org, pk=study_id).first()
            if study is None:
                continue
            created += _study_routed(actor=actor, study=study, rules=rules)
    return created


def _study_routed(*, actor: Actor, study: Study, rules: list[RoutingRule]) -> list[Analysis]:
    series = analysable_series(study=study)
    if not series:
        return []
    created: list[Analysis] = []
    handled_models: set[int] = set()
    for rule in rules:
        if rule.registered_model_id in handled_models:
            continue
        criteria = SeriesCriteria.of_rule(rule)
        if not any(criteria.matches(row) for row in series):
            continue
        handled_models.add(rule.registered_model_id)
        pending = Analysis.objects.filter(
            study=study, model_version__registered_model_id=rule.registered_model_id
        ).select_related("job")
        if pending.filter(job__status=JobStatus.QUEUED).exists():
            logger.info(
                "Study %s: an analysis by %s is already queued", study.study_instance_uid, rule.registered_model
            )
            continue
        running = list(pending.filter(job__status=JobStatus.RUNNING))
        if running and not _arrived_after_start(series, running):
            logger.info(
                "Study %s: the running analysis by %s already reads every instance",
                study.study_instance_uid,
                rule.registered_model,
            )
            continue
        if running:
            logger.info(
                "Study %s: instances arrived while analysis %s runs; queueing a follow-up",
                study.study_instance_uid,
                running[0].pk,
            )
        try:
            with transaction.atomic():
                analysis = analysis_create(
                    actor=actor,
                    study=study,
                    registered_model=rule.registered_model,
                    alias=rule.alias,
                    trigger=AnalysisTrigger.ROUTING,
                    routing_rule=rule,
                )
        except DomainError as exc:
            logger.warning("Routing rule %r did not analyse study %s: %s", rule.name, study.study_instance_uid, exc)
            continue
        created.append(analysis)
    return created


def _arrived_after_start(series: list[Series], running: list[Analysis]) -> bool:
    """Whether an image of `series` was stored (or replaced) after the latest running analysis
    started listing the study's instances: then no running analysis covers it."""
    started = [analysis.job.started_at for analysis in running]
    if any(moment is None for moment in started):  # running but not started: it will read them all
        return False
    latest = max(moment for moment in started if moment is not None)
    return Instance.objects.filter(series__in=series, updated_at__gte=latest).exists()


def studies_with_new_instances(outcomes: Iterable[StoreOutcome]) -> set[int]:
    """The studies a receipt stored a new (or replaced) instance into; the same bytes again or a
    kept duplicate changes nothing to analyse."""
    return {
        outcome.instance.series.study_id
        for outcome in outcomes
        if outcome.status in (StoreStatus.STORED, StoreStatus.OVERWRITTEN)
    }


def studies_received_on_receipt(*, actor: Actor, study_ids: Iterable[int]) -> list[Analysis]:
    """`studies_received` for the receiving paths: never raises (a store must not fail because of
    routing); an error is logged with its traceback."""
    ids = list(study_ids)
    if not ids:
        return []
    try:
        return studies_received(actor=actor, study_ids=ids)
    except Exception:
        logger.exception("Routing the received studies %s failed", ids)
        return []

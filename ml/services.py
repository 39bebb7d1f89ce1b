"""Writes on the model registry: versions, imports, aliases."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, BinaryIO

from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Max

from core.audit.models import AuditOutcome
from core.audit.services import audit_record
from core.errors import Conflict, NotFound, ValidationFailed
from core.storage import file_sha256, scratch_directory
from core.tenancy.actors import Actor
from ml.artifacts import ArtifactIntegrityError, artifact_store, artifact_zip, manifest_sha256
from ml.choices import PRODUCTION_ALIAS, VersionSource
from ml.kinds import ArtifactRejected, ModelKind, Trained, get_kind
from ml.models import ModelAlias, ModelAliasEvent, ModelVersion, RegisteredModel, TrainingRun, model_name_validator
from ml.selectors import serving_cache_clear


def _kind_or_400(kind_name: str) -> ModelKind:
    try:
        return get_kind(kind_name)
    except LookupError as exc:
        raise ValidationFailed(str(exc), fields={"kind": [str(exc)]}) from exc


@transaction.atomic
def registered_model_ensure(*, actor: Actor, name: str, kind: str, description: str = "") -> RegisteredModel:
    """The organization's model `name`, created on first use; refuses a name taken by another kind."""
    from django.core.exceptions import ValidationError as DjangoValidationError

    try:
        model_name_validator(name)
    except DjangoValidationError as exc:
        raise ValidationFailed("Invalid model name.", fields={"model": list(exc.messages)}) from exc
    family = _kind_or_400(kind).family_name
    model, created = RegisteredModel.objects.get_or_create(
        organization=actor.organization, name=name, defaults={"kind": kind, "description": description}
    )
    if model.kind != kind and get_kind(model.kind).family_name != family:
        raise Conflict(
            f"Model {name!r} is of kind {model.kind}, not {kind}.",
            code="kind_mismatch",
            fields={"model": ["Kind differs."]},
        )
    if created:
        audit_record(actor=actor, action="ml.model.create", obj=model, details={"kind": kind})
    return model


@transaction.atomic
def model_version_create(
    *,
    actor: Actor,
    registered_model: RegisteredModel,
    directory: Path,
    source: str,
    metrics: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    input_schema: dict[str, Any] | None = None,
    model_card: dict[str, Any] | None = None,
    data_fingerprint: str = "",
    parent: ModelVersion | None = None,
    training_run: TrainingRun | None = None,
    promote: bool = False,
    kind_name: str = "",
) -> ModelVersion:
    """Store the artifact in `directory` as the model's next version.

    `kind_name` files the version under another kind of the model's family (default: the
    model's kind). The first version of a model becomes `production` automatically; later ones
    only when `promote` is true (or through `model_alias_set`).
    """
    kind = get_kind(kind_name or registered_model.kind)
    if kind.family_name != get_kind(registered_model.kind).family_name:
        raise Conflict(f"Model {registered_model.name!r} does not hold {kind.name} versions.", code="kind_mismatch")
    # Lock the model row so concurrent creations get consecutive numbers.
    RegisteredModel.objects.select_for_update().filter(pk=registered_model.pk).first()
    number = (registered_model.versions.aggregate(n=Max("number"))["n"] or 0) + 1
    prefix = f"org-{registered_model.organization_id}/{registered_model.name}/v{number}-{uuid.uuid4().hex[:8]}"
    manifest = artifact_store(directory, prefix=prefix, kind=kind.name, artifact_format=kind.artifact_format)
    version = ModelVersion.objects.create(
        registered_model=registered_model,
        number=number,
        kind=kind.name,
        artifact_format=kind.artifact_format,
        artifact_path=prefix,
        manifest=manifest,
        artifact_sha256=manifest_sha256(manifest),
        params=params or {},
        metrics=metrics or {},
        input_schema=input_schema or {},
        model_card=model_card or {},
        data_fingerprint=data_fingerprint,
        source=source,
        parent=parent,
        training_run=training_run,
        created_by=actor.user,
    )
    audit_record(
        actor=actor,
        action="ml.version.create",
        obj=version,
        details={"model": registered_model.name, "number": number, "source": source, "sha256": version.artifact_sha256},
    )
    if number == 1 or promote:
        reason = "first version" if number == 1 else "promoted on creation"
        _alias_move(
            actor=actor, registered_model=registered_model, alias=PRODUCTION_ALIAS, version=version, reason=reason
        )
    return version


def model_version_from_trained(
    *, actor: Actor, registered_model: RegisteredModel, trained: Trained, **kwargs: Any
) -> ModelVersion:
    """Save a freshly trained model through its kind and register it as a new version.

    The kind is `trained.kind` when training chose one, else `kind_name`, else the model's.
    """
    requested = kwargs.pop("kind_name", "")
    kind_name = trained.kind or requested or registered_model.kind
    kind = get_kind(kind_name)
    with scratch_directory(prefix="save-") as tmp:
        kind.save(trained, tmp)
        return model_version_create(
            actor=actor,
            registered_model=registered_model,
            directory=tmp,
            source=VersionSource.TRAINED,
            metrics=trained.metrics,
            params=trained.params,
            input_schema=trained.input_schema,
            model_card=trained.model_card,
            data_fingerprint=trained.data_fingerprint,
            kind_name=kind.name,
            **kwargs,
        )


def model_version_import(
    *,
    actor: Actor,
    name: str,
    kind: str,
    upload: UploadedFile,
    description: str = "",
    promote: bool = False,
) -> ModelVersion:
    """Import an uploaded artifact (e.g. pretrained weights) as a new version of model `name`.

    Formats that can run code when loaded (`kind.loads_code`) are accepted only from org admins
    or keys with the `ml` scope, and the kind must validate them out of process.
    """
    model_kind = _kind_or_400(kind)
    actor.require_org_admin("import models")
    with scratch_directory(prefix="import-") as tmp:
        source = tmp / "upload"
        with source.open("wb") as out:
            for chunk in upload.chunks():
                out.write(chunk)
        upload_sha256 = file_sha256(source)
        directory = tmp / "artifact"
        directory.mkdir()
        try:
            imported = model_kind.import_artifact(source, directory)
        except ArtifactRejected as exc:
            raise ValidationFailed(str(exc), code="invalid_artifact", fields={"file": [str(exc)]}) from exc
        with transaction.atomic():
            registered_model = registered_model_ensure(actor=actor, name=name, kind=kind, description=description)
            version = model_version_create(
                actor=actor,
                registered_model=registered_model,
                directory=directory,
                source=VersionSource.IMPORTED,
                metrics=imported.metrics,
                params=imported.params,
                input_schema=imported.input_schema,
                model_card={**imported.model_card, "imported_file": upload.name, "imported_sha256": upload_sha256},
                promote=promote,
            )
            audit_record(
                actor=actor,
                action="ml.version.import",
                obj=version,
                details={
                    "model": name,
                    "kind": kind,
                    "file": upload.name,
                    "sha256": upload_sha256,
                    "loads_code": model_kind.loads_code,
                },
            )
    return version


@transaction.atomic
def model_alias_set(*, actor: Actor, name: str, alias: str, version_number: int, reason: str = "") -> ModelAlias:
    """Point `alias` of model `name` at version `version_number` (a promotion, or a rollback)."""
    from django.core.exceptions import ValidationError as DjangoValidationError

    from ml.models import alias_name_validator

    actor.require_org_admin("move model aliases")
    try:
        alias_name_validator(alias)
    except DjangoValidationError as exc:
        raise ValidationFailed("Invalid alias name.", fields={"alias": list(exc.messages)}) from exc
    registered_model = (
        RegisteredModel.objects.select_for_update().filter(organization=actor.organization, name=name).first()
    )
    if registered_model is None:
        raise NotFound(f"Model {name!r} not found.")
    version = registered_model.versions.filter(number=version_number).first()
    if version is None:
        raise ValidationFailed(
            f"Model {name!r} has no version {version_number}.", fields={"version": [f"No version {version_number}."]}
        )
    return _alias_move(actor=actor, registered_model=registered_model, alias=alias, version=version, reason=reason)


def _alias_move(
    *, actor: Actor, registered_model: RegisteredModel, alias: str, version: ModelVersion, reason: str
) -> ModelAlias:
    current = ModelAlias.objects.filter(registered_model=registered_model, name=alias).select_related("version").first()
    previous = current.version if current else None
    # this process serves the new version at once (others within ML_SERVING_CACHE_SECONDS)
    serving_cache_clear()
    transaction.on_commit(serving_cache_clear)
    if current is None:
        current = ModelAlias.objects.create(registered_model=registered_model, name=alias, version=version)
    elif current.version_id != version.pk:
        current.version = version
        current.save(update_fields=["version", "updated_at"])
    else:
        return current  # already there: nothing moved, nothing to record
    ModelAliasEvent.objects.create(
        registered_model=registered_model,
        alias=alias,
        from_version=previous,
        to_version=version,
        actor_label=actor.label,
        actor_user=actor.user,
        reason=reason[:500],
    )
    audit_record(
        actor=actor,
        action="ml.alias.set",
        obj=current,
        details={
            "model": registered_model.name,
            "alias": alias,
            "from": previous.number if previous else None,
            "to": version.number,
            "reason": reason,
        },
    )
    return current


def model_version_export(*, actor: Actor, version: ModelVersion, handle: BinaryIO) -> None:
    """Write `version`'s verified artifact and MANIFEST.json as a zip into `handle`; audit the export.

    Raises:
        ArtifactIntegrityError: a stored file is missing or differs from the manifest. The
            failed attempt is audited (outcome `failure`) before the error propagates.
    """
    details: dict[str, Any] = {
        "model": version.registered_model.name,
        "number": version.number,
        "sha256": version.artifact_sha256,
    }
    try:
        artifact_zip(prefix=version.artifact_path, manifest=version.manifest, handle=handle)
    except ArtifactIntegrityError as exc:
        # A tampered artifact is a security event: record it even though nothing is exported.
        audit_record(
            actor=actor,
            action="ml.version.export",
            obj=version,
            outcome=AuditOutcome.FAILURE,
            details={**details, "error": str(exc)},
        )
        raise
    audit_record(actor=actor, action="ml.version.export", obj=version, details=details)

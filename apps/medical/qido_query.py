"""QIDO-RS matching and result attributes (PS3.18 10.6, PS3.4 C.2.2.2) on the archive's index.

A search never opens a file: matching keys are translated into one SQL query on the indexed
columns of the Patient / Study / Series / Instance rows, and the answer is built from those
columns (plus the stored DICOM JSON `attributes` of each level for `includefield`).

Matching rules (PS3.4 C.2.2.2):

- Single value: equality. Person names (PN) match case-insensitively; every other VR keeps
  case, as C.2.2.2.1 says.
- Wildcards `*` (any run of characters) and `?` (one character), on any text VR but UI, DA, TM
  and the numbers: translated to SQL LIKE with `%`/`_`/`\\` escaped (GLOB on SQLite, whose LIKE
  ignores case). A value of `*` alone matches everything, as an empty value does.
- Range (DA, TM): `20240101-20240131`, `-20240131`, `20240101-`; rows with no value never match
  a range. A single DA or TM value is an equality.
- List of UIDs (UI, and the CS keys Modality / ModalitiesInStudy / PatientSex, whose values
  cannot hold a comma): `1.2,1.3` or `1.2\\1.3`, any of them matches.
- `fuzzymatching=true` (person names only): case-insensitive, and the value matches the start of
  any name component, so "joh" matches "Doe^John" and "do" matches it too (a component starts at
  the beginning of the name, after `^`, after a space or after `=`); wildcards still apply.
- ModalitiesInStudy: a study matches when any of its series has one of the modalities.

A key that is not a DICOM attribute (nor `limit`, `offset`, `fuzzymatching`, `includefield`) is a
400; a DICOM attribute the index cannot match on is ignored, and said so in the `Warning` header
(PS3.18 8.3.4.1 allows either; ignoring keeps clients that send extra keys working).
"""

from __future__ import annotations

import datetime
import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from django.db.models import Exists, F, Lookup, Model, OuterRef, Q, QuerySet
from django.db.models.sql.compiler import SQLCompiler
from pydicom.datadict import dictionary_keyword, dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.tag import Tag

from apps.medical.models import Instance, Series, Study
from core.errors import ValidationFailed
from core.tenancy.models import Organization

MAX_RESULTS = 1000  # the most results one answer holds (PS3.18 8.3.4.4: the server's maximum)
MAX_LIST_VALUES = 500  # UIDs in one list-of-UID match
CONTROL_PARAMETERS = ("limit", "offset", "fuzzymatching", "includefield")
SPECIFIC_CHARACTER_SET = "ISO_IR 192"  # DICOM JSON is UTF-8 (PS3.18 F.2), whatever the stored files used
INSTANCE_AVAILABILITY = "ONLINE"
_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
_TAG = re.compile(r"^\(?([0-9A-Fa-f]{4}),?([0-9A-Fa-f]{4})\)?$")


class Level(Enum):
    """The query/retrieve levels, top to bottom."""

    STUDY = "study"
    SERIES = "series"
    INSTANCE = "instance"


# --- attributes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attribute:
    """A DICOM attribute the index holds: where its value lives relative to the row of `level`
    (`owner`: "patient", "study", "series" or "instance"; `column`: the field of that row, or
    None when the value is computed)."""

    keyword: str
    owner: str
    column: str | None
    matchable: bool = True

    @property
    def tag(self) -> str:
        return _tag_of(self.keyword)

    @property
    def vr(self) -> str:
        return _vr_of(self.keyword)


@functools.cache
def _tag_of(keyword: str) -> str:
    return f"{tag_for_keyword(keyword):08X}"


@functools.cache
def _vr_of(keyword: str) -> str:
    return str(dictionary_VR(keyword))


def _attributes(*rows: tuple[str, str, str | None] | tuple[str, str, str | None, bool]) -> dict[str, Attribute]:
    return {row[0]: Attribute(*row) for row in rows}


# The indexed attributes, by keyword. `owner` says which row holds them.
INDEXED: dict[str, Attribute] = _attributes(
    ("PatientName", "patient", "patient_name"),
    ("PatientID", "patient", "patient_id"),
    ("IssuerOfPatientID", "patient", "issuer_of_patient_id"),
    ("PatientBirthDate", "patient", "birth_date"),
    ("PatientSex", "patient", "sex"),
    ("StudyInstanceUID", "study", "study_instance_uid"),
    ("StudyDate", "study", "study_date"),
    ("StudyTime", "study", "study_time"),
    ("AccessionNumber", "study", "accession_number"),
    ("StudyID", "study", "study_id"),
    ("StudyDescription", "study", "study_description"),
    ("ReferringPhysicianName", "study", "referring_physician_name"),
    ("ModalitiesInStudy", "study", "modalities_in_study"),
    ("NumberOfStudyRelatedSeries", "study", "number_of_series", False),
    ("NumberOfStudyRelatedInstances", "study", "number_of_instances", False),
    ("SeriesInstanceUID", "series", "series_instance_uid"),
    ("Modality", "series", "modality"),
    ("SeriesNumber", "series", "series_number"),
    ("SeriesDescription", "series", "series_description"),
    ("BodyPartExamined", "series", "body_part_examined"),
    ("SeriesDate", "series", "series_date"),
    ("SeriesTime", "series", "series_time"),
    ("PerformedProcedureStepStartDate", "series", "performed_procedure_step_start_date"),
    ("PerformedProcedureStepStartTime", "series", "performed_procedure_step_start_time"),
    ("NumberOfSeriesRelatedInstances", "series", "number_of_instances", False),
    ("SOPInstanceUID", "instance", "sop_instance_uid"),
    ("SOPClassUID", "instance", "sop_class_uid"),
    ("InstanceNumber", "instance", "instance_number"),
    ("Rows", "instance", "rows"),
    ("Columns", "instance", "columns"),
    ("NumberOfFrames", "instance", "number_of_frames"),
    # Computed or constant: returned, never matched on.
    ("SpecificCharacterSet", "constant", None, False),
    ("InstanceAvailability", "constant", None, False),
    ("RetrieveURL", "constant", None, False),
)

# The attributes every answer carries per level (PS3.18 Tables 10.6.3-3, -4, -5).
STUDY_RESULT = (
    "SpecificCharacterSet",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "InstanceAvailability",
    "ModalitiesInStudy",
    "ReferringPhysicianName",
    "RetrieveURL",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyID",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
    "StudyDescription",
)
SERIES_RESULT = (
    "SpecificCharacterSet",
    "Modality",
    "SeriesDescription",
    "SeriesNumber",
    "SeriesInstanceUID",
    "NumberOfSeriesRelatedInstances",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
    "RetrieveURL",
    "StudyInstanceUID",  # always: a client lists series of several studies by it
)
INSTANCE_RESULT = (
    "SpecificCharacterSet",
    "SOPClassUID",
    "SOPInstanceUID",
    "InstanceAvailability",
    "TimezoneOffsetFromUTC",
    "RetrieveURL",
    "InstanceNumber",
    "Rows",
    "Columns",
    "BitsAllocated",
    "NumberOfFrames",
    "StudyInstanceUID",
    "SeriesInstanceUID",
)

# Which stored attributes belong to the study level (Patient Identification, Patient
# Demographic, Patient Study and General Study modules, PS3.3 C.2 and C.7.2) and to the series
# level (General Series, Frame of Reference, General Equipment, PS3.3 C.7.3, C.7.4, C.7.5):
# `includefield=all` and an explicitly named attribute are returned from the level's stored
# `attributes` only when they belong to it (a study answer never carries pixel data, a
# slice's position or another instance-level value from the first stored instance).
STUDY_KEYWORDS = frozenset(
    {
        "SpecificCharacterSet",
        "TimezoneOffsetFromUTC",
        # Patient Identification / Demographic / Clinical trial subject
        "PatientName",
        "PatientID",
        "IssuerOfPatientID",
        "IssuerOfPatientIDQualifiersSequence",
        "TypeOfPatientID",
        "OtherPatientIDsSequence",
        "OtherPatientNames",
        "PatientBirthName",
        "PatientMotherBirthName",
        "PatientBirthDate",
        "PatientBirthTime",
        "PatientSex",
        "PatientSpeciesDescription",
        "PatientSpeciesCodeSequence",
        "PatientBreedDescription",
        "PatientBreedCodeSequence",
        "ResponsiblePerson",
        "ResponsiblePersonRole",
        "ResponsibleOrganization",
        "PatientComments",
        "EthnicGroup",
        "PatientIdentityRemoved",
        "DeidentificationMethod",
        "DeidentificationMethodCodeSequence",
        "ClinicalTrialSponsorName",
        "ClinicalTrialProtocolID",
        "ClinicalTrialProtocolName",
        "ClinicalTrialSiteID",
        "ClinicalTrialSiteName",
        "ClinicalTrialSubjectID",
        "ClinicalTrialSubjectReadingID",
        # Patient Study
        "AdmittingDiagnosesDescription",
        "AdmittingDiagnosesCodeSequence",
        "PatientAge",
        "PatientSize",
        "PatientWeight",
        "MedicalAlerts",
        "Allergies",
        "SmokingStatus",
        "PregnancyStatus",
        "AdditionalPatientHistory",
        "Occupation",
        # General Study
        "StudyInstanceUID",
        "StudyDate",
        "StudyTime",
        "ReferringPhysicianName",
        "ReferringPhysicianIdentificationSequence",
        "StudyID",
        "AccessionNumber",
        "IssuerOfAccessionNumberSequence",
        "StudyDescription",
        "PhysiciansOfRecord",
        "NameOfPhysiciansReadingStudy",
        "RequestingService",
        "ProcedureCodeSequence",
        "ReasonForPerformedProcedureCodeSequence",
        "ReferencedStudySequence",
        "StudyIDIssuer",
        "ClinicalTrialTimePointID",
        "ClinicalTrialTimePointDescription",
    }
)
SERIES_KEYWORDS = frozenset(
    {
        "SpecificCharacterSet",
        "TimezoneOffsetFromUTC",
        # General Series
        "Modality",
        "SeriesInstanceUID",
        "SeriesNumber",
        "Laterality",
        "SeriesDate",
        "SeriesTime",
        "PerformingPhysicianName",
        "PerformingPhysicianIdentificationSequence",
        "ProtocolName",
        "SeriesDescription",
        "SeriesDescriptionCodeSequence",
        "OperatorsName",
        "OperatorIdentificationSequence",
        "ReferencedPerformedProcedureStepSequence",
        "RelatedSeriesSequence",
        "BodyPartExamined",
        "PatientPosition",
        "SmallestPixelValueInSeries",
        "LargestPixelValueInSeries",
        "RequestAttributesSequence",
        "PerformedProcedureStepID",
        "PerformedProcedureStepStartDate",
        "PerformedProcedureStepStartTime",
        "PerformedProcedureStepEndDate",
        "PerformedProcedureStepEndTime",
        "PerformedProcedureStepDescription",
        "PerformedProtocolCodeSequence",
        "CommentsOnThePerformedProcedureStep",
        "AnatomicalOrientationType",
        "ClinicalTrialCoordinatingCenterName",
        "ClinicalTrialSeriesID",
        "ClinicalTrialSeriesDescription",
        # Frame of Reference
        "FrameOfReferenceUID",
        "PositionReferenceIndicator",
        # General Equipment
        "Manufacturer",
        "InstitutionName",
        "InstitutionAddress",
        "StationName",
        "InstitutionalDepartmentName",
        "ManufacturerModelName",
        "DeviceSerialNumber",
        "SoftwareVersions",
        "GantryID",
        "SpatialResolution",
        "DateOfLastCalibration",
        "TimeOfLastCalibration",
    }
)
_LEVEL_KEYWORDS = {"study": STUDY_KEYWORDS, "series": SERIES_KEYWORDS}


@dataclass(frozen=True)
class LevelSpec:
    """One search level: its model, the path from its row to each owner row, the levels whose
    attributes it may match on, and its ordering."""

    model: type[Model]
    owners: Mapping[str, str]  # owner → path prefix from this level's row ("" is the row itself)
    ordering: tuple[str, ...]

    def path(self, attribute: Attribute) -> str:
        assert attribute.column is not None
        return f"{self.owners[attribute.owner]}{attribute.column}"

    def study_pk(self) -> str:
        return f"{self.owners['study']}pk"

    def scope(self, *, across_studies: bool, across_series: bool) -> list[str]:
        """The owners whose attributes an answer of this level carries (own level first)."""
        own = next(name for name in ("instance", "series", "study") if name in self.owners)
        scope = [own]
        if own == "instance" and across_series:
            scope.append("series")
        if own != "study" and across_studies:
            scope.append("study")
        return scope


LEVELS: dict[Level, LevelSpec] = {
    Level.STUDY: LevelSpec(
        model=Study,
        owners={"patient": "patient__", "study": ""},
        ordering=("-study_date", "-study_time", "study_instance_uid"),
    ),
    Level.SERIES: LevelSpec(
        model=Series,
        owners={"patient": "study__patient__", "study": "study__", "series": ""},
        ordering=(
            "-study__study_date",
            "-study__study_time",
            "study__study_instance_uid",
            "series_number",
            "series_instance_uid",
        ),
    ),
    Level.INSTANCE: LevelSpec(
        model=Instance,
        owners={
            "patient": "series__study__patient__",
            "study": "series__study__",
            "series": "series__",
            "instance": "",
        },
        ordering=(
            "-series__study__study_date",
            "-series__study__study_time",
            "series__study__study_instance_uid",
            "series__series_number",
            "series__series_instance_uid",
            "instance_number",
            "sop_instance_uid",
        ),
    ),
}


def attribute_keyword(key: str) -> str | None:
    """The keyword a query key names: a keyword (`PatientID`) or a tag in any common spelling
    (`00100020`, `0010,0020`, `(0010,0020)`, lower-case hex). None: not a dictionary attribute
    (a private or unknown tag); raises ValidationFailed when it is neither a keyword nor a tag."""
    if tag_for_keyword(key) is not None:
        return key
    match = _TAG.match(key)
    if match is None and "." in key and all(_TAG.match(part) or tag_for_keyword(part) for part in key.split(".")):
        return None  # an attribute inside a sequence (PS3.18 8.3.4.1): valid, never indexed
    if match is None:
        raise ValidationFailed(
            f"{key!r} is neither a DICOM attribute keyword nor a tag.",
            code="invalid",
            fields={key: ["Unknown attribute."]},
        )
    tag = Tag(int(match.group(1) + match.group(2), 16))
    keyword = keyword_for_tag(tag)
    return keyword or None


# --- matching ----------------------------------------------------------------------------------


def _glob_pattern(value: str) -> str:
    return value.replace("[", "[[]")


def _like_pattern(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


class DicomWildcard(Lookup):
    """`column` matches a DICOM wildcard pattern (`*`, `?`), keeping case.

    SQLite's LIKE ignores ASCII case, so there the match is a GLOB (which keeps it and speaks
    `*`/`?` natively); elsewhere a LIKE with `%`, `_` and the escape character escaped."""

    lookup_name = "dicom_wildcard"
    prepare_rhs = False

    def as_sql(self, compiler: SQLCompiler, connection: Any) -> tuple[str, Any]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        if connection.vendor == "sqlite":
            return f"{lhs} GLOB %s", [*lhs_params, _glob_pattern(self.rhs)]
        return f"{lhs} LIKE %s ESCAPE '\\'", [*lhs_params, _like_pattern(self.rhs)]


class DicomWildcardIgnoringCase(DicomWildcard):
    """`column` matches a DICOM wildcard pattern, ignoring case (person names)."""

    lookup_name = "dicom_iwildcard"

    def as_sql(self, compiler: SQLCompiler, connection: Any) -> tuple[str, Any]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        pattern = _like_pattern(self.rhs)
        if connection.vendor == "sqlite":  # SQLite's LIKE ignores ASCII case already
            return f"{lhs} LIKE %s ESCAPE '\\'", [*lhs_params, pattern]
        return f"UPPER({lhs}) LIKE UPPER(%s) ESCAPE '\\'", [*lhs_params, pattern]


def _invalid(key: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{key}: {message}", code="invalid", fields={key: [message]})


def _has_wildcard(value: str) -> bool:
    return "*" in value or "?" in value


def _date(key: str, value: str) -> str:
    try:
        datetime.datetime.strptime(value, "%Y%m%d")
    except ValueError:
        raise _invalid(key, f"{value!r} is not a date (YYYYMMDD).") from None
    if len(value) != 8:
        raise _invalid(key, f"{value!r} is not a date (YYYYMMDD).")
    return value


_TIME = re.compile(r"^([01][0-9]|2[0-3])([0-5][0-9]([0-5][0-9](\.[0-9]{1,6})?)?)?$")


def _time(key: str, value: str) -> str:
    if not _TIME.match(value):
        raise _invalid(key, f"{value!r} is not a time (HH, HHMM, HHMMSS or HHMMSS.FFFFFF).")
    return value


def _range(path: str, key: str, value: str, parse: Callable[[str, str], str], upper_pad: str) -> Q:
    """A DA/TM value: an equality or a range `lo-hi`, `-hi`, `lo-` (never matching empty values)."""
    if "-" not in value:
        return Q(**{path: parse(key, value)})
    if value.count("-") != 1 or value == "-":
        raise _invalid(key, f"{value!r} is not a value or a range (lo-hi, -hi, lo-).")
    low, high = value.split("-")
    condition = ~Q(**{path: ""})
    if low:
        condition &= Q(**{f"{path}__gte": parse(key, low)})
    if high:
        # a partial upper bound includes everything it starts ("-1530" includes 15:30:59)
        condition &= Q(**{f"{path}__lte": parse(key, high) + upper_pad[len(high) :]})
    if low and high and low > high:
        raise _invalid(key, f"{value!r} is an empty range (its start is after its end).")
    return condition


def _integer(key: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise _invalid(key, f"{value!r} is not an integer.") from None
    if not -(2**31) <= number < 2**31:
        raise _invalid(key, f"{value!r} is out of range.")
    return number


def _uid(key: str, value: str) -> str:
    if len(value) > 64 or not _UID.match(value):
        raise _invalid(key, f"{value!r} is not a UID.")
    return value


def _values(value: str) -> list[str]:
    return [part.strip() for part in re.split(r"[,\\]", value) if part.strip()]


def _fuzzy_name(path: str, value: str) -> Q:
    """A name component starts with `value` (see the module docstring), ignoring case."""
    pattern = value if value.endswith("*") else f"{value}*"
    condition = Q(DicomWildcardIgnoringCase(F(path), pattern))
    for separator in ("^", " ", "="):
        condition |= Q(DicomWildcardIgnoringCase(F(path), f"*{separator}{pattern}"))
    return condition


_LIST_CS = frozenset({"Modality", "ModalitiesInStudy", "PatientSex"})


def attribute_condition(attribute: Attribute, path: str, key: str, value: str, *, fuzzy: bool) -> Q | None:
    """The condition `value` puts on the column at `path` (None: universal matching)."""
    if value in ("", "*"):
        return None
    vr = attribute.vr
    if vr == "DA":
        return _range(path, key, value, _date, "99991231")
    if vr == "TM":
        return _range(path, key, value, _time, "235959.999999")
    if vr in ("IS", "US", "UL", "SL", "SS"):
        return Q(**{path: _integer(key, value)})
    if vr == "UI":
        if _has_wildcard(value):
            raise _invalid(key, "UIDs match by value or by a list of values, not by wildcards.")
        uids = [_uid(key, uid) for uid in _values(value)]
        if len(uids) > MAX_LIST_VALUES:
            raise _invalid(key, f"At most {MAX_LIST_VALUES} UIDs in one list.")
        return Q(**{path: uids[0]}) if len(uids) == 1 else Q(**{f"{path}__in": uids})
    if vr == "PN":
        if fuzzy:
            return _fuzzy_name(path, value)
        if _has_wildcard(value):
            return Q(DicomWildcardIgnoringCase(F(path), value))
        return Q(**{f"{path}__iexact": value})
    if attribute.keyword in _LIST_CS and ("," in value or "\\" in value):
        condition = Q()
        for one in _values(value):
            condition |= Q(DicomWildcard(F(path), one)) if _has_wildcard(one) else Q(**{path: one})
        return condition
    if _has_wildcard(value):
        return Q(DicomWildcard(F(path), value))
    return Q(**{path: value})


# --- the query ---------------------------------------------------------------------------------


@dataclass
class QidoQuery:
    """A parsed QIDO-RS query: the conditions, paging, and what to include."""

    level: Level
    condition: Q = field(default_factory=Q)
    limit: int = MAX_RESULTS
    limit_given: bool = False
    offset: int = 0
    include_all: bool = False
    include: list[str] = field(default_factory=list)  # keywords named by includefield
    include_tags: list[str] = field(default_factory=list)  # tags of non-dictionary attributes
    ignored: list[str] = field(default_factory=list)  # keys we do not match on (Warning header)
    across_studies: bool = True
    across_series: bool = True

    @property
    def needs_stored_attributes(self) -> bool:
        return self.include_all or bool(self.include_tags) or any(keyword not in INDEXED for keyword in self.include)

    def scope(self) -> list[str]:
        return LEVELS[self.level].scope(across_studies=self.across_studies, across_series=self.across_series)

    def stored_levels(self) -> list[str]:
        """The levels whose stored `attributes` the answer reads: those in scope for
        `includefield`; the instance's own always (BitsAllocated, TimezoneOffsetFromUTC)."""
        if self.needs_stored_attributes:
            return self.scope()
        return ["instance"] if self.level is Level.INSTANCE else []


def _single(params: Mapping[str, Sequence[str]], key: str) -> str:
    values = params[key]
    if len(values) != 1:
        raise _invalid(key, "Give this parameter once.")
    value = values[0]
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        raise _invalid(key, "Control characters are not allowed.")
    return value.strip()


def _non_negative(key: str, value: str) -> int:
    if not value.isdigit() or not value.isascii():
        raise _invalid(key, f"{value!r} is not a non-negative integer.")
    return min(int(value), 10**12) if len(value) <= 13 else 10**12  # bounded, never an overflow


def _fuzzymatching(value: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise _invalid("fuzzymatching", "Give true or false.")
    return value.lower() == "true"


def _includefields(query: QidoQuery, values: Iterable[str]) -> None:
    for raw in values:
        for key in (part.strip() for part in raw.split(",")):
            if not key:
                continue
            if key.lower() == "all":
                query.include_all = True
                continue
            if any(ord(char) < 0x20 for char in key):
                raise _invalid("includefield", "Control characters are not allowed.")
            try:
                keyword = attribute_keyword(key)
            except ValidationFailed:
                raise _invalid("includefield", f"{key!r} is neither a DICOM attribute keyword nor a tag.") from None
            if keyword is None:
                match = _TAG.match(key)
                assert match is not None
                query.include_tags.append((match.group(1) + match.group(2)).upper())
            else:
                query.include.append(keyword)


def _matchable_at(level: Level, attribute: Attribute) -> bool:
    return attribute.matchable and attribute.owner in LEVELS[level].owners


def query_parse(
    params: Mapping[str, Sequence[str]], *, level: Level, study_uid: str = "", series_uid: str = ""
) -> QidoQuery:
    """Parse a QIDO-RS query string (as a mapping of lists) for `level`; raises ValidationFailed.

    `study_uid`/`series_uid` are the path's UIDs: they are matching keys like the others."""
    spec = LEVELS[level]
    query = QidoQuery(level=level, limit=MAX_RESULTS, across_studies=not study_uid, across_series=not series_uid)
    condition = Q()
    if study_uid:
        condition &= Q(**{f"{spec.owners['study']}study_instance_uid": _uid("study", study_uid)})
    if series_uid:
        condition &= Q(**{f"{spec.owners['series']}series_instance_uid": _uid("series", series_uid)})
    fuzzy = _fuzzymatching(_single(params, "fuzzymatching")) if "fuzzymatching" in params else False
    if "limit" in params:
        limit = _non_negative("limit", _single(params, "limit"))
        if limit == 0:
            raise _invalid("limit", "Give a limit of at least 1.")
        query.limit, query.limit_given = min(limit, MAX_RESULTS), limit <= MAX_RESULTS
    if "offset" in params:
        query.offset = _non_negative("offset", _single(params, "offset"))
    _includefields(query, params.get("includefield", []))
    for key in params:
        if key in CONTROL_PARAMETERS:
            continue
        keyword = attribute_keyword(key)
        value = _single(params, key)
        attribute = INDEXED.get(keyword or "")
        if level is Level.STUDY and keyword == "Modality":
            attribute = INDEXED["ModalitiesInStudy"]  # a study "has" the modalities of its series
        if attribute is None or not _matchable_at(level, attribute):
            query.ignored.append(keyword or key)
            continue
        if attribute.keyword == "ModalitiesInStudy":
            modality = attribute_condition(INDEXED["Modality"], "modality", key, value, fuzzy=False)
            if modality is not None:
                in_study = Series.objects.filter(modality, study_id=OuterRef(spec.study_pk()))
                condition &= Q(Exists(in_study))
            continue
        matched = attribute_condition(attribute, spec.path(attribute), key, value, fuzzy=fuzzy)
        if matched is not None:
            condition &= matched
    query.condition = condition
    return query


def qido_search(*, org: Organization, query: QidoQuery) -> list[Any]:
    """The rows matching `query` in `org`, ordered and paged, in one SQL query.

    Fetches one row past the server's maximum when the client gave no limit (or a larger
    one), so the caller can say that more results exist."""
    spec = LEVELS[query.level]
    related = [owner.removesuffix("__") for owner in spec.owners.values() if owner]
    rows: QuerySet[Any] = spec.model._default_manager.filter(organization=org)
    rows = rows.filter(query.condition).select_related(*related)
    read = set(query.stored_levels())
    unread = [owner for name, owner in spec.owners.items() if name != "patient" and name not in read]
    rows = rows.defer(*(f"{owner}attributes" for owner in unread))
    extra = 0 if query.limit_given else 1
    return list(rows.order_by(*spec.ordering)[query.offset : query.offset + query.limit + extra])


# --- the answer --------------------------------------------------------------------------------


def _element(vr: str, values: Sequence[Any]) -> dict[str, Any]:
    present = [value for value in values if value not in (None, "")]
    if not present:
        return {"vr": vr}
    if vr == "PN":
        return {"vr": vr, "Value": [_person_name(str(value)) for value in present]}
    return {"vr": vr, "Value": list(present)}


def _person_name(value: str) -> dict[str, str]:
    groups = value.split("=")
    return {
        name: group for name, group in zip(("Alphabetic", "Ideographic", "Phonetic"), groups, strict=False) if group
    }


def _column_values(attribute: Attribute, value: Any) -> list[Any]:
    if value in (None, ""):
        return []
    if attribute.vr in ("IS", "US", "UL", "SL", "SS"):
        return [int(value)]
    return str(value).split("\\")


def _without_bulk(element: Any) -> Any:
    """A DICOM JSON element without bulk data references (also inside sequence items)."""
    if not isinstance(element, dict) or "BulkDataURI" in element or "InlineBinary" in element:
        return None
    if element.get("vr") == "SQ" and "Value" in element:
        items = []
        for item in element["Value"]:
            items.append({tag: kept for tag, value in item.items() if (kept := _without_bulk(value)) is not None})
        return {**element, "Value": items}
    return element


def level_attributes(attributes: Mapping[str, Any], level: str) -> dict[str, Any]:
    """The part of an instance's DICOM JSON a QIDO-RS answer of `level` ("study", "series",
    "instance") may carry: the level's attributes (every one at instance level), never pixel
    data or bulk data references.

    What the Study and Series rows store as their `attributes` (`services` filters once, when the
    row is made), so `includefield=all` decodes a few hundred bytes of JSON per study rather than
    the whole first instance; applied again when answering, so rows stored whole still answer
    the same."""
    allowed = _LEVEL_KEYWORDS.get(level)
    kept: dict[str, Any] = {}
    for tag, element in attributes.items():
        if allowed is not None and _keyword_of_tag(tag) not in allowed:
            continue
        if tag.upper().startswith("7FE0"):
            continue
        value = _without_bulk(element)
        if value is not None:
            kept[tag] = value
    return kept


@dataclass
class ResultBuilder:
    """Builds the DICOM JSON objects of one answer from the rows of `qido_search`."""

    query: QidoQuery
    retrieve_root: str  # the absolute URL of the DICOMweb root, ending in "/"

    def result(self, row: Any) -> dict[str, Any]:
        scope = self.query.scope()
        keywords: list[str] = []
        for name, result in (("study", STUDY_RESULT), ("series", SERIES_RESULT), ("instance", INSTANCE_RESULT)):
            if name in scope:
                keywords += result
        owners = self._owners(row)
        out: dict[str, Any] = {}
        stored = self._stored(owners)
        if self.query.include_all:
            out.update(stored)
        for keyword in (*keywords, *self.query.include):
            self._put(out, keyword, owners, stored)
        for tag in self.query.include_tags:
            if tag in stored:
                out[tag] = stored[tag]
        return dict(sorted(out.items()))

    def _owners(self, row: Any) -> dict[str, Any]:
        level = self.query.level
        if level is Level.STUDY:
            return {"study": row, "patient": row.patient}
        if level is Level.SERIES:
            return {"series": row, "study": row.study, "patient": row.study.patient}
        return {"instance": row, "series": row.series, "study": row.series.study, "patient": row.series.study.patient}

    def _stored(self, owners: Mapping[str, Any]) -> dict[str, Any]:
        """The stored attributes this level may answer: the study's (filtered to the study
        level), the series' (filtered to the series level), and at instance level all of the
        instance's; never bulk data."""
        stored: dict[str, Any] = {}
        for name in reversed(self.query.stored_levels()):  # the own level's values win
            stored.update(level_attributes(owners[name].attributes or {}, name))
        return stored

    def _put(self, out: dict[str, Any], keyword: str, owners: Mapping[str, Any], stored: Mapping[str, Any]) -> None:
        attribute = INDEXED.get(keyword)
        tag = _tag_of(keyword)
        if attribute is None:
            if tag in stored:
                out[tag] = stored[tag]
            return
        if attribute.column is None:
            out[tag] = self._constant(keyword, owners)
            return
        if attribute.owner not in owners:
            return
        value = getattr(owners[attribute.owner], attribute.column)
        out[tag] = _element(attribute.vr, _column_values(attribute, value))

    def _constant(self, keyword: str, owners: Mapping[str, Any]) -> dict[str, Any]:
        if keyword == "SpecificCharacterSet":
            return _element("CS", [SPECIFIC_CHARACTER_SET])
        if keyword == "InstanceAvailability":
            return _element("CS", [INSTANCE_AVAILABILITY])
        path = f"studies/{owners['study'].study_instance_uid}"
        if self.query.level is not Level.STUDY:
            path += f"/series/{owners['series'].series_instance_uid}"
        if self.query.level is Level.INSTANCE:
            path += f"/instances/{owners['instance'].sop_instance_uid}"
        return _element("UR", [self.retrieve_root + path])


@functools.lru_cache(maxsize=4096)
def _keyword_of_tag(tag: str) -> str:
    try:
        return str(dictionary_keyword(int(tag, 16)))
    except (KeyError, ValueError):
        return ""


def results_build(*, query: QidoQuery, rows: Sequence[Any], retrieve_root: str) -> list[dict[str, Any]]:
    """The DICOM JSON objects of `rows` (the rows beyond the limit left out)."""
    builder = ResultBuilder(query=query, retrieve_root=retrieve_root)
    return [builder.result(row) for row in rows[: query.limit]]


def studies_touched(*, query: QidoQuery, rows: Sequence[Any]) -> list[tuple[str, str]]:
    """(Study Instance UID, Patient ID) of every study an answer carries (for the PHI access log)."""
    touched = []
    for row in rows[: query.limit]:
        study = row if query.level is Level.STUDY else row.study if query.level is Level.SERIES else row.series.study
        touched.append((study.study_instance_uid, study.patient.patient_id))
    return touched

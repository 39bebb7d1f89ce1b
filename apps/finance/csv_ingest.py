"""Reading credit CSVs: streaming profile and schema inference, and chunked loading.

A dataset is profiled in one streaming pass over chunks (`PROFILE_CHUNK_ROWS` rows at a time,
every cell read as text), so a 150,000 x 300 file never sits in memory more than one chunk at
a time. The profile decides each column's type (numeric when every non-missing value parses
as a number), its missing rate, range, categories, and flags id-like, constant and
high-cardinality columns, which start out excluded.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np
import pandas as pd
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from apps.finance.choices import ColumnRole, ColumnType
from core.errors import PayloadTooLarge, ValidationFailed

PROFILE_CHUNK_ROWS = 10_000
MAX_COLUMNS = 2_000
MAX_CATEGORIES = 200  # a categorical feature with more distinct values is excluded (id-like / free text)
TRACK_DISTINCT = 1_000  # distinct values counted per column before we stop (memory bound)
# Longest cell a batch row may carry (the csv module's default limit); longer is that row's error.
MAX_CELL_CHARS = 131_072
NA_VALUES = ["", "NA", "N/A", "n/a", "na", "NaN", "nan", "NULL", "null", "None", "?", "-"]
_ID_NAME = re.compile(r"^(id|.*[_ ]id|.*_no|application|applicant|customer|account)$", re.IGNORECASE)
_BOOLEAN_TARGETS = ({"0", "1"}, {"false", "true"}, {"no", "yes"}, {"n", "y"})


def upload_size_check(upload: UploadedFile) -> None:
    """Refuse an uploaded CSV larger than `API_MAX_UPLOAD_BYTES` (413) before anything reads it."""
    limit = settings.API_MAX_UPLOAD_BYTES
    if upload.size is not None and upload.size > limit:
        raise PayloadTooLarge(f"The file is larger than the {limit // (1024 * 1024)} MB limit.")


@dataclass
class CsvFormat:
    """How to parse a file: its text encoding, delimiter and header."""

    encoding: str
    delimiter: str
    header: list[str]
    raw_header: list[str] | None = None  # as the parser sees it (before stripping); None = same as header

    def raw_name(self, name: str) -> str:
        """The header cell as written for the stripped column `name` (what pandas' `usecols` matches)."""
        if self.raw_header is None:
            return name
        return dict(zip(self.header, self.raw_header, strict=True)).get(name, name)


def sniff_format(handle: IO[bytes]) -> CsvFormat:
    """Detect encoding and delimiter from the start of the file and validate its header.

    Raises:
        ValidationFailed: binary data, no header, fewer than two columns, duplicate or empty
            column names.
    """
    handle.seek(0)
    sample = handle.read(256 * 1024)
    handle.seek(0)
    if not sample.strip():
        raise ValidationFailed("The file is empty.", code="empty_file", fields={"file": ["The file is empty."]})
    if b"\x00" in sample:
        raise _not_csv("The file is binary, not a CSV text file.")
    encoding = "utf-8-sig"
    try:
        sample.decode(encoding) if len(sample) < 256 * 1024 else sample[:-4].decode(encoding, errors="strict")
    except UnicodeDecodeError:
        encoding = "latin-1"  # real-world exports from older systems; every byte decodes
    text = sample.decode(encoding, errors="replace")
    first_line = text.splitlines()[0] if text.splitlines() else ""
    counts = _delimiters_outside_quotes(first_line)
    delimiter = max([",", ";", "\t", "|"], key=lambda candidate: counts[candidate])
    if counts[delimiter] == 0:
        raise _not_csv("The file does not look like a CSV: its first line has a single column.")
    raw_header = next(csv.reader(io.StringIO(first_line), delimiter=delimiter, skipinitialspace=True))
    header = [name.strip() for name in raw_header]
    if len(header) > MAX_COLUMNS:
        raise _not_csv(f"The file has {len(header)} columns; at most {MAX_COLUMNS} are supported.")
    if any(not name for name in header):
        raise _not_csv("Every column needs a name in the header row (found an empty column name).")
    duplicates = sorted(name for name, count in Counter(header).items() if count > 1)
    if duplicates:
        message = f"Duplicate column names in the header: {', '.join(duplicates)}."
        raise ValidationFailed(message, code="duplicate_columns", fields={"file": [message]})
    return CsvFormat(
        encoding=encoding, delimiter=delimiter, header=header, raw_header=raw_header if raw_header != header else None
    )


def _delimiters_outside_quotes(line: str) -> Counter[str]:
    """How often each character occurs outside double quotes: a quoted header name such as
    "income, net" in a `;` file must not make the comma look like the delimiter."""
    counts: Counter[str] = Counter()
    quoted = False
    for character in line:
        if character == '"':
            quoted = not quoted
        elif not quoted:
            counts[character] += 1
    return counts


def _not_csv(message: str) -> ValidationFailed:
    return ValidationFailed(message, code="not_csv", fields={"file": [message]})


def read_chunks(
    handle: IO[bytes],
    fmt: CsvFormat,
    *,
    chunk_rows: int = PROFILE_CHUNK_ROWS,
    usecols: list[str] | None = None,
    dtype: Any = str,
) -> Iterator[pd.DataFrame]:
    """Yield the file as text DataFrames (missing cells are NaN), `chunk_rows` rows at a time."""
    handle.seek(0)
    if usecols is not None:
        # pandas matches `usecols`/`dtype` against the header as written ("age " with its space)
        usecols = [fmt.raw_name(name) for name in usecols]
        if isinstance(dtype, dict):
            dtype = {fmt.raw_name(name): kind for name, kind in dtype.items()}
    try:
        reader = pd.read_csv(
            handle,
            sep=fmt.delimiter,
            encoding=fmt.encoding,
            dtype=dtype,
            na_values=NA_VALUES,
            keep_default_na=False,
            skipinitialspace=True,
            chunksize=chunk_rows,
            usecols=usecols,
            on_bad_lines="error",
        )
        with reader:
            for chunk in reader:
                chunk.columns = [str(c).strip() for c in chunk.columns]
                yield chunk
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise _not_csv(f"The CSV could not be parsed: {str(exc).splitlines()[0][:300]}") from exc


@dataclass
class RowChunk:
    """A chunk of a batch file: text cells of the wanted columns, and one parse error per row."""

    frame: pd.DataFrame
    errors: list[str]


def read_row_chunks(
    handle: IO[bytes], fmt: CsvFormat, *, usecols: list[str], chunk_rows: int = PROFILE_CHUNK_ROWS
) -> Iterator[RowChunk]:
    """Yield a batch file's rows `chunk_rows` at a time, tolerating malformed rows.

    Unlike `read_chunks` (datasets: one malformed row rejects the whole upload), a batch must
    never fail because of one row: a row with more or fewer cells than the header, an
    undecodable byte or an oversized cell becomes that row's error, and its cells are read as
    far as they are trustworthy (the application id, when it comes before the damage, is kept
    so the error can be matched to the application). Blank lines are skipped, as pandas does.

    Returns:
        RowChunks whose `frame` has exactly `usecols` (text, NaN = missing) and whose
        `errors[i]` is "" for a well-formed row.
    """
    handle.seek(0)
    # errors="replace": a stray byte must not sink the batch; it surfaces as that row's unknown value.
    text = io.TextIOWrapper(handle, encoding=fmt.encoding, errors="replace", newline="")
    # The csv module's own cell limit raises mid-row and loses the row's id: lift it, check here.
    csv.field_size_limit(max(csv.field_size_limit(), 64 * MAX_CELL_CHARS))
    reader = csv.reader(text, delimiter=fmt.delimiter, skipinitialspace=True)
    width = len(fmt.header)
    positions = [fmt.header.index(name) for name in usecols]
    na_values = set(NA_VALUES)
    try:
        try:
            next(reader)  # the header, validated by `sniff_format`
        except StopIteration:
            return
        rows: list[list[str | None]] = []
        errors: list[str] = []
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:  # e.g. a cell beyond csv.field_size_limit(); the reader moves on
                rows.append([None] * len(positions))
                errors.append(f"unreadable row: {exc}")
            else:
                if not cells:
                    continue
                oversized = any(len(cell) > MAX_CELL_CHARS for cell in cells)
                if oversized:
                    first = cells[0] if cells and len(cells[0]) <= MAX_CELL_CHARS else None
                    rows.append([first if p == 0 and first not in na_values else None for p in positions])
                    errors.append(f"unreadable row: field larger than field limit ({MAX_CELL_CHARS} characters)")
                elif len(cells) == width:
                    rows.append([None if cells[p] in na_values else cells[p] for p in positions])
                    errors.append("")
                else:
                    # Cells after a stray or missing delimiter are shifted: trust only the first one
                    # (usually the application id) and only where the row has it.
                    rows.append(
                        [cells[p] if p == 0 and cells and cells[0] not in na_values else None for p in positions]
                    )
                    errors.append(f"the row has {len(cells)} fields, the header has {width}")
            if len(rows) >= chunk_rows:
                yield RowChunk(pd.DataFrame(rows, columns=usecols, dtype=object), errors)
                rows, errors = [], []
        if rows:
            yield RowChunk(pd.DataFrame(rows, columns=usecols, dtype=object), errors)
    finally:
        text.detach()  # leave the caller's binary handle open; it closes it


@dataclass
class _ColumnStats:
    name: str
    missing: int = 0
    non_numeric: int = 0
    numeric_count: int = 0
    numeric_sum: float = 0.0
    numeric_min: float = math.inf
    numeric_max: float = -math.inf
    all_integer: bool = True
    counts: Counter[str] = field(default_factory=Counter)
    distinct_overflow: bool = False

    def update(self, values: pd.Series) -> None:
        present = values.dropna()
        self.missing += len(values) - len(present)
        if present.empty:
            return
        numbers = pd.to_numeric(present, errors="coerce")
        finite = numbers[np.isfinite(numbers)]
        self.non_numeric += int(len(present) - len(finite))
        if len(finite):
            self.numeric_count += len(finite)
            self.numeric_sum += float(finite.sum())
            self.numeric_min = min(self.numeric_min, float(finite.min()))
            self.numeric_max = max(self.numeric_max, float(finite.max()))
            self.all_integer = self.all_integer and bool((finite == np.floor(finite)).all())
        if not self.distinct_overflow:
            self.counts.update(present.value_counts().to_dict())
            if len(self.counts) > TRACK_DISTINCT:
                self.distinct_overflow = True
                self.counts = Counter(dict(self.counts.most_common(MAX_CATEGORIES)))


@dataclass
class DatasetProfile:
    """The result of profiling: rows, target stats, the column schema and the issues found."""

    rows: int
    positive_label: str
    positive_rate: float
    schema: list[dict[str, Any]]
    issues: list[dict[str, str]]


def profile_csv(handle: IO[bytes], *, target: str, positive_label: str = "") -> DatasetProfile:
    """Profile a CSV in one streaming pass and infer its schema.

    Args:
        handle: the binary file, seekable.
        target: the name of the 0/1 (or labelled) default column.
        positive_label: the target value meaning "defaulted" when the target is not 0/1
            (e.g. `bad`, `2`, `yes`).

    Returns:
        DatasetProfile with one schema entry per column, in file order.

    Raises:
        ValidationFailed: unreadable file, no target column, single-class or ambiguous target.
    """
    fmt = sniff_format(handle)
    target = target.strip()
    if target not in fmt.header:
        message = f"Column {target!r} is not in the file. Columns: {', '.join(fmt.header[:30])}."
        raise ValidationFailed(message, code="no_target", fields={"target": [message]})
    stats = {name: _ColumnStats(name) for name in fmt.header}
    rows = 0
    for chunk in read_chunks(handle, fmt):
        rows += len(chunk)
        for name in fmt.header:
            stats[name].update(chunk[name])
    if rows == 0:
        raise ValidationFailed("The file has a header but no rows.", code="empty_file", fields={"file": ["No rows."]})

    issues: list[dict[str, str]] = []
    label, positive_count, labelled_rows = _resolve_target(stats[target], rows, positive_label, issues)
    schema = [_column_schema(stats[name], rows, is_target=name == target, issues=issues) for name in fmt.header]
    features = [c for c in schema if c["role"] == ColumnRole.FEATURE]
    if not features:
        raise ValidationFailed(
            "The file has no usable feature columns besides the target.",
            code="no_features",
            fields={"file": ["No usable feature columns."]},
        )
    return DatasetProfile(
        rows=rows,
        positive_label=label,
        positive_rate=positive_count / labelled_rows,
        schema=schema,
        issues=issues,
    )


def _canonical(value: str) -> str:
    """`1.0` and `1` are the same label; text labels compare case-insensitively."""
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text.lower()
    return str(int(number)) if number.is_integer() else repr(number)


def _resolve_target(
    stats: _ColumnStats, rows: int, positive_label: str, issues: list[dict[str, str]]
) -> tuple[str, int, int]:
    labels: Counter[str] = Counter()
    for value, count in stats.counts.items():
        labels[_canonical(value)] += count
    if stats.distinct_overflow or len(labels) > 20:
        message = f"Target {stats.name!r} has too many distinct values for a default flag."
        raise ValidationFailed(message, code="bad_target", fields={"target": [message]})
    if len(labels) < 2:
        only = next(iter(labels), "missing")
        message = f"Target {stats.name!r} has a single class ({only}); training needs defaults and non-defaults."
        raise ValidationFailed(message, code="single_class", fields={"target": [message]})
    if positive_label:
        wanted = _canonical(positive_label)
        if wanted not in labels:
            message = f"positive_label {positive_label!r} does not occur in {stats.name!r} (values: {sorted(labels)})."
            raise ValidationFailed(message, code="bad_positive_label", fields={"positive_label": [message]})
    else:
        pair = set(labels)
        match = next((known for known in _BOOLEAN_TARGETS if pair == known), None)
        if match is None:
            message = (
                f"Target {stats.name!r} has values {sorted(labels)}; say which one means default with positive_label."
            )
            raise ValidationFailed(message, code="positive_label_required", fields={"positive_label": [message]})
        wanted = sorted(match)[1]  # "1", "true", "yes", "y"
    if len(labels) > 2:
        issues.append(
            {
                "code": "multiclass_target",
                "column": stats.name,
                "message": f"Target has {len(labels)} values; {wanted!r} is default, all others non-default.",
            }
        )
    if stats.missing:
        issues.append(
            {
                "code": "missing_target",
                "column": stats.name,
                "message": f"{stats.missing} rows have no target value and are left out of training.",
            }
        )
    labelled = rows - stats.missing
    return wanted, labels[wanted], labelled


def _column_schema(stats: _ColumnStats, rows: int, *, is_target: bool, issues: list[dict[str, str]]) -> dict[str, Any]:
    present = rows - stats.missing
    is_numeric = present > 0 and stats.non_numeric == 0
    n_unique = len(stats.counts) if not stats.distinct_overflow else None
    column: dict[str, Any] = {
        "name": stats.name,
        "type": ColumnType.NUMERIC if is_numeric else ColumnType.CATEGORICAL,
        "role": ColumnRole.TARGET if is_target else ColumnRole.FEATURE,
        "description": "",
        "reason_code": reason_code_for(stats.name),
        "missing_rate": round(stats.missing / rows, 6),
        "n_unique": n_unique,
        "min": None,
        "max": None,
    }
    if is_numeric:
        column.update(
            observed_min=stats.numeric_min,
            observed_max=stats.numeric_max,
            mean=stats.numeric_sum / stats.numeric_count,
            integer=stats.all_integer,
            # A column never negative in the data is bounded below by 0: a negative input is an error.
            min=0 if stats.numeric_min >= 0 else None,
        )
    if n_unique is not None and n_unique <= MAX_CATEGORIES:
        column["categories"] = [value for value, _ in stats.counts.most_common()]
    if is_target:
        return column

    def exclude(code: str, message: str) -> None:
        column["role"] = ColumnRole.EXCLUDED
        issues.append({"code": code, "column": stats.name, "message": message})

    if present == 0:
        exclude("empty_column", "The column has no values; excluded.")
    elif n_unique == 1:
        exclude("constant_column", "The column has a single value; excluded.")
    elif _ID_NAME.match(stats.name) and (n_unique is None or n_unique > 0.5 * present):
        exclude("id_column", "Looks like an identifier (unique per row); excluded from the features.")
    elif not is_numeric and (n_unique is None or n_unique > MAX_CATEGORIES):
        exclude(
            "high_cardinality",
            f"Text column with more than {MAX_CATEGORIES} distinct values (id or free text); excluded.",
        )
    if column["role"] == ColumnRole.FEATURE and column["missing_rate"] > 0.95:
        issues.append({"code": "mostly_missing", "column": stats.name, "message": "More than 95% of values missing."})
    return column


def reason_code_for(name: str) -> str:
    """A stable reason code derived from the feature name (editable in the schema)."""
    slug = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").upper()
    return f"RC_{slug[:40] or 'FEATURE'}"

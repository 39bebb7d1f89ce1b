"""The external DICOM validators, as test helpers: dicom3tools' `dciodvfy` and PixelMed's SR validator.

Use them on a file written with `pydicom.dcmwrite(path, ds, enforce_file_format=True)` (what the
archive stores), e.g. in a test that stores an SR and reads it back:

    from tests.medical.dicom_validators import dciodvfy_errors, pixelmed_sr_report, require_validator

    require_validator("dciodvfy")            # skip here, fail under CI=true
    assert dciodvfy_errors(path) == []
    report = pixelmed_sr_report(path)
    assert report.root_template == "TID_1500 (MeasurementReport)"
    assert report.errors == [] and report.warnings == [] and report.complete

What the tools print (observed with dicom3tools 1.00 and libpixelmed-java 20200416 on Debian):

- `dciodvfy FILE` names the IOD it recognised (e.g. `Comprehensive3DSR`) and one line per
  finding, `Error - ...` or `Warning - ...`, on stderr; its exit status does not say whether
  errors were found.
- `DicomSRValidator FILE` prints `Found <IOD> IOD`, `Found Root Template TID_1500
  (MeasurementReport)`, then `Error: Template ...` lines for violations (a code not in its context
  group, a missing mandatory or conditional item), `Root Template Validation Complete`, then
  `Warning: <position>: <path>: Content Item not in template` for every content item no template
  row matched (e.g. all of them when the root container's concept name is wrong), and
  `IOD validation complete`. Its exit status is 0 either way.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

PIXELMED_JAR = Path("/usr/share/java/pixelmed.jar")
# PixelMed compiles its SR templates into XPath; JDK 21's secure-processing defaults cap XPath at
# 10,000 operators and the template stylesheet needs more ("JAXP0801003 ... exceeds the '10,000'
# limit"). C1 JIT only: a validation is a short run, and this halves it (about 6 s instead of 12).
_JAVA_OPTIONS = (
    "-Djdk.xml.xpathExprOpLimit=0",
    "-Djdk.xml.xpathExprGrpLimit=0",
    "-Djdk.xml.xpathTotalOpLimit=0",
    "-XX:TieredStopAtLevel=1",
)
_TIMEOUT_SECONDS = 120


def validator_available(tool: str) -> bool:
    """Whether `tool` ("dciodvfy" or "pixelmed") can run here."""
    if tool == "dciodvfy":
        return shutil.which("dciodvfy") is not None
    if tool == "pixelmed":
        return shutil.which("java") is not None and PIXELMED_JAR.exists()
    raise ValueError(f"unknown validator {tool!r}")


def require_validator(tool: str) -> None:
    """Skip the calling test when `tool` is missing — but fail under CI=true, where `.ci/run`
    installs it and a silent skip would hide that nothing was validated."""
    if validator_available(tool):
        return
    message = f"{tool} is not installed (Debian: dicom3tools / libpixelmed-java)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def _run(command: list[str]) -> str:
    completed = subprocess.run(command, capture_output=True, text=True, timeout=_TIMEOUT_SECONDS, check=False)
    return completed.stdout + completed.stderr


def dciodvfy_output(path: str | Path) -> str:
    """Everything `dciodvfy` prints for the file."""
    return _run(["dciodvfy", str(path)])


def dciodvfy_errors(path: str | Path) -> list[str]:
    """The `Error` lines `dciodvfy` reports for the file (empty: valid for its IOD)."""
    return [line.strip() for line in dciodvfy_output(path).splitlines() if line.startswith("Error")]


def dciodvfy_warnings(path: str | Path) -> list[str]:
    """The `Warning` lines `dciodvfy` reports for the file."""
    return [line.strip() for line in dciodvfy_output(path).splitlines() if line.startswith("Warning")]


@dataclass(frozen=True)
class SrValidation:
    """What PixelMed's `DicomSRValidator` said about one SR file."""

    iod: str | None  # "Comprehensive3DSR"
    root_template: str | None  # "TID_1500 (MeasurementReport)"
    errors: list[str]  # "Error: Template ..." lines
    warnings: list[str]  # "Warning: ..." lines, e.g. "Content Item not in template"
    complete: bool  # both validation passes ran to the end
    output: str

    @property
    def items_not_in_template(self) -> list[str]:
        return [warning for warning in self.warnings if "Content Item not in template" in warning]


def pixelmed_sr_report(path: str | Path) -> SrValidation:
    """Run PixelMed's `DicomSRValidator` on the file and parse what it prints."""
    output = _run(
        [
            "java",
            *_JAVA_OPTIONS,
            "-cp",
            str(PIXELMED_JAR),
            "com.pixelmed.validate.DicomSRValidator",
            str(path),
        ]
    )
    lines = [line.strip() for line in output.splitlines()]
    iod = next((line.removeprefix("Found ").removesuffix(" IOD") for line in lines if line.endswith(" IOD")), None)
    root = next(
        (line.removeprefix("Found Root Template ") for line in lines if line.startswith("Found Root Template ")),
        None,
    )
    return SrValidation(
        iod=iod,
        root_template=root,
        errors=[line for line in lines if line.startswith("Error")],
        warnings=[line for line in lines if line.startswith("Warning")],
        complete="Root Template Validation Complete" in lines and "IOD validation complete" in lines,
        output=output,
    )

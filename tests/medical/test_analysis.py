"""Analyses (apps/medical/analysis.py) through the HTTP API, on real MedNIST images with a real
tiny classifier trained in the session (`diagnosis_fixtures`): findings and their probabilities,
saliency maps, the SR and secondary capture written into the study, idempotency, unreadable
instances, every bad input and tenancy. Jobs run inline (eager Celery, on commit)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from django.core.files.storage import default_storage
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit, generate_uid

from apps.medical import analysis as analyses
from apps.medical.choices import AccessKind, FindingLevel, ReceivedVia
from apps.medical.models import Analysis, AnalysisFinding, Instance, PhiAccess, Study
from core.jobs.choices import JobStatus
from core.jobs.models import Job
from ml import runtime
from ml.models import RegisteredModel
from tests.conftest import assert_error
from tests.medical.conftest import stow_body, stow_content_type
from tests.medical.diagnosis_fixtures import (
    CLASSES,
    MODEL_NAME,
    classifier_version,
    mednist_files,
    requires_mednist,
)

pytestmark = [pytest.mark.django_db, requires_mednist]

STOW = "/api/v1/medical/dicomweb/studies"
DICOMWEB = "/api/v1/medical/dicomweb"


def analyses_url(study_uid: str) -> str:
    return f"/api/v1/medical/studies/{study_uid}/analyses/"


def post_json(client: Any, url: str, body: Any) -> Any:
    return client.generic("POST", url, json.dumps(body), content_type="application/json")


@pytest.fixture
def version(org: Any) -> Any:
    return classifier_version(org)


@pytest.fixture
def study_files() -> list[Path]:
    """Three chest X-rays and three hands: one study (MedNIST's), two series."""
    return mednist_files("CXR", count=3) + mednist_files("Hand", count=3)


@pytest.fixture
def stored_study(api: Any, study_files: list[Path]) -> str:
    response = api.generic("POST", STOW, stow_body(study_files), content_type=stow_content_type())
    assert response.status_code == 200, response.content
    return str(pydicom.dcmread(study_files[0], stop_before_pixels=True).StudyInstanceUID)


@pytest.fixture
def analyse(django_capture_on_commit_callbacks: Any) -> Callable[..., dict[str, Any]]:
    """`analyse(client, study_uid, **body)`: POST an analysis, run its job inline; returns its detail."""

    def run(client: Any, study_uid: str, **body: Any) -> dict[str, Any]:
        with django_capture_on_commit_callbacks(execute=True):
            response = post_json(client, analyses_url(study_uid), {"model": MODEL_NAME, **body})
        assert response.status_code == 202, response.content
        created = response.json()
        assert set(created) == {"analysis", "job"}
        detail = client.get(f"{analyses_url(study_uid)}{created['analysis']['id']}/")
        assert detail.status_code == 200, detail.content
        return dict(detail.json())

    return run


def instance_inputs(instance: Instance, version: Any) -> list[np.ndarray]:
    from apps.medical.imaging import dataset_inputs

    with default_storage.open(instance.file, "rb") as handle:
        ds = pydicom.dcmread(handle)
    return dataset_inputs(ds, runtime.preprocessor(version))


# --- the analysis end to end ---------------------------------------------------------------------


def test_an_analysis_classifies_every_image_of_the_study(
    api: Any, version: Any, stored_study: str, analyse: Callable[..., dict[str, Any]]
) -> None:
    # when
    result = analyse(api, stored_study)
    # then: done, by the production version, with its artifact hash
    assert result["status"] == JobStatus.SUCCEEDED
    assert result["model"] == {
        "name": MODEL_NAME,
        "kind": "medical.image_classifier",
        "version": version.number,
        "artifact_sha256": version.artifact_sha256,
    }
    assert result["alias"] == "production"
    assert result["trigger"] == "api"
    # and one finding per series, each with its three instances
    assert len(result["series"]) == 2
    for series in result["series"]:
        assert len(series["instances"]) == 3
        assert set(series["probabilities"]) == set(CLASSES)
        assert series["suggested_label"] == max(series["probabilities"], key=series["probabilities"].get)
        mean = {name: np.mean([row["probabilities"][name] for row in series["instances"]]) for name in CLASSES}
        assert series["probabilities"] == pytest.approx(mean, abs=1e-9)
        assert series["saliency_url"].startswith("http://testserver/api/v1/medical/studies/")
        assert series["saliency_instance"]["saliency_url"]  # the instance's finding shows the same map
        concerned = series["saliency_instance"]["probabilities"][series["suggested_label"]]
        assert concerned == max(row["probabilities"][series["suggested_label"]] for row in series["instances"])
        for row in series["instances"]:
            assert sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
            assert row["frame_number"] is None  # single-frame images
    # and the study-level suggestion is the mean over every instance
    instances = [row for series in result["series"] for row in series["instances"]]
    study_mean = {name: np.mean([row["probabilities"][name] for row in instances]) for name in CLASSES}
    assert result["probabilities"] == pytest.approx(study_mean, abs=1e-9)
    assert result["suggested_label"] == max(study_mean, key=lambda name: study_mean[name])
    assert result["probability"] == pytest.approx(study_mean[result["suggested_label"]], abs=1e-9)
    assert result["errors"] == []
    assert result["saliency_url"]
    assert result["completed_at"]


def test_the_probabilities_equal_the_runtime_and_a_raw_forward_on_the_same_images(
    api: Any, version: Any, stored_study: str, analyse: Callable[..., dict[str, Any]]
) -> None:
    import torch

    # given
    result = analyse(api, stored_study)
    rows = {row["sop_instance_uid"]: row for series in result["series"] for row in series["instances"]}
    loaded = runtime.load_version(version).model
    for instance in Instance.objects.filter(sop_instance_uid__in=list(rows)):
        inputs = instance_inputs(instance, version)
        # when: ml.runtime, and the network itself on the same input
        expected = runtime.predict(version, inputs).outputs[0]
        with torch.inference_mode():
            logits = loaded.network(torch.from_numpy(np.stack(inputs)))
        raw = torch.softmax(logits.float(), dim=1)[0].numpy()
        # then
        got = [rows[instance.sop_instance_uid]["probabilities"][name] for name in CLASSES]
        # float32: a batch of one and the job's batch of six differ in the last bits only
        assert got == pytest.approx(list(expected), abs=1e-6)
        assert got == pytest.approx(raw.tolist(), abs=1e-5)


def test_the_saliency_overlay_is_a_png_of_the_source_images_size_and_its_read_is_logged(
    api: Any, version: Any, stored_study: str, analyse: Callable[..., dict[str, Any]]
) -> None:
    # given
    result = analyse(api, stored_study)
    series = result["series"][0]
    instance = Instance.objects.get(sop_instance_uid=series["saliency_instance"]["sop_instance_uid"])
    # when
    response = api.get(series["saliency_url"])
    # then
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    with Image.open(io.BytesIO(b"".join(response.streaming_content))) as image:
        assert image.format == "PNG"
        assert image.size == (instance.columns, instance.rows)
    # and the read is a PHI access naming the study and the instance
    access = PhiAccess.objects.filter(kind=AccessKind.ANALYSIS).first()
    assert access is not None
    assert access.sop_instance_uid == instance.sop_instance_uid
    assert [row.study_instance_uid for row in access.studies.all()] == [stored_study]


def test_viewing_an_analysis_writes_a_phi_access_row(
    api: Any, version: Any, stored_study: str, analyse: Callable[..., dict[str, Any]]
) -> None:
    result = analyse(api, stored_study)
    before = PhiAccess.objects.filter(kind=AccessKind.ANALYSIS).count()
    assert api.get(result["url"]).status_code == 200
    assert api.get(analyses_url(stored_study)).status_code == 200
    assert PhiAccess.objects.filter(kind=AccessKind.ANALYSIS).count() == before + 2


def test_the_sr_and_the_saliency_capture_are_in_the_study_for_any_dicomweb_client(
    api: Any, version: Any, stored_study: str, analyse: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    from apps.medical import structured_reports

    # given
    result = analyse(api, stored_study)
    sr = Instance.objects.select_related("series").get(sop_instance_uid=result["sr_sop_instance_uid"])
    sc = Instance.objects.select_related("series").get(sop_instance_uid=result["saliency_sop_instance_uid"])
    assert sr.received_via == sc.received_via == ReceivedVia.AI
    assert sr.series.modality == "SR"
    # when: QIDO-RS lists the series
    listed = api.get(f"{DICOMWEB}/studies/{stored_study}/series", HTTP_ACCEPT="application/dicom+json")
    assert listed.status_code == 200
    modalities = {item["00080060"]["Value"][0] for item in listed.json()}
    assert {"SR", sc.series.modality} <= modalities
    assert sc.series.modality in {"OT", "SC"}
    # and WADO-RS retrieves the SR like any instance
    response = api.get(result["structured_report_url"], HTTP_ACCEPT='multipart/related; type="application/dicom"')
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content
    start = body.index(b"DICM") - 128
    path = tmp_path / "sr.dcm"
    path.write_bytes(body[start:])
    ds = pydicom.dcmread(path)
    assert ds.SOPInstanceUID == result["sr_sop_instance_uid"]
    assert ds.VerificationFlag == "UNVERIFIED"
    # then: it says what the model found, with which version, about which images
    content = structured_reports.ai_result_read(ds)
    assert content.label == result["suggested_label"]
    assert content.probability == pytest.approx(result["probability"], abs=1e-6)
    assert content.algorithm_name == MODEL_NAME
    assert content.algorithm_version == str(version.number)
    assert content.verification_flag == "UNVERIFIED"
    analysed = {row["sop_instance_uid"] for series in result["series"] for row in series["instances"]}
    assert set(content.source_sop_instance_uids) == analysed
    assert {uid for uid, _, _ in content.per_instance} == analysed


def test_a_large_study_puts_only_its_most_concerning_instances_in_the_sr(
    api: Any, version: Any, stored_study: str, analyse: Callable[..., dict[str, Any]], monkeypatch: Any
) -> None:
    from apps.medical import analysis, structured_reports

    # given: room for two instance rows in the SR
    monkeypatch.setattr(analysis, "SR_INSTANCE_ROWS", 2)
    # when
    result = analyse(api, stored_study)
    # then: the SR's instance rows are the two with the highest probability of the suggestion,
    # while the study-level finding still references every analysed image
    sr = Instance.objects.get(sop_instance_uid=result["sr_sop_instance_uid"])
    with default_storage.open(sr.file, "rb") as handle:
        content = structured_reports.ai_result_read(pydicom.dcmread(io.BytesIO(handle.read())))
    rows = [row for series in result["series"] for row in series["instances"]]
    assert len(rows) > 2
    top = sorted(rows, key=lambda row: -row["probabilities"][result["suggested_label"]])[:2]
    assert {uid for uid, _, _ in content.per_instance} == {row["sop_instance_uid"] for row in top}
    assert set(content.source_sop_instance_uids) == {row["sop_instance_uid"] for row in rows}


def test_the_stored_sr_passes_dciodvfy_and_pixelmeds_sr_validator(
    api: Any, version: Any, stored_study: str, analyse: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    from tests.medical import dicom_validators

    # given the SR as the archive stores it
    result = analyse(api, stored_study)
    sr = Instance.objects.get(sop_instance_uid=result["sr_sop_instance_uid"])
    path = tmp_path / "stored-sr.dcm"
    with default_storage.open(sr.file, "rb") as handle:
        path.write_bytes(handle.read())
    # then
    dicom_validators.require_validator("dciodvfy")
    assert dicom_validators.dciodvfy_errors(path) == []
    dicom_validators.require_validator("pixelmed")
    report = dicom_validators.pixelmed_sr_report(path)
    assert report.complete, report.output
    assert report.root_template is not None and "1500" in report.root_template, report.output
    assert report.errors == [], report.output


def test_a_second_run_of_the_job_leaves_one_set_of_findings_and_results(
    api: Any, version: Any, stored_study: str, analyse: Callable[..., dict[str, Any]]
) -> None:
    # given a finished analysis
    result = analyse(api, stored_study)
    analysis = Analysis.objects.get(pk=result["id"])
    findings = sorted(AnalysisFinding.objects.filter(analysis=analysis).values_list("level", "instance_id", "pk"))
    instances = Instance.objects.count()
    files = sorted(AnalysisFinding.objects.filter(analysis=analysis).values_list("saliency_file", flat=True))
    # when its job runs again (a worker crashed after finishing the work, before recording it)
    analyses.analysis_execute(analysis_id=analysis.pk, criteria=analyses.SeriesCriteria(), report=lambda **kwargs: None)
    # then: the same findings (same rows), one SR and one capture, the same saliency files
    assert (
        sorted(AnalysisFinding.objects.filter(analysis=analysis).values_list("level", "instance_id", "pk")) == findings
    )
    assert Instance.objects.count() == instances
    assert Instance.objects.filter(sop_instance_uid=result["sr_sop_instance_uid"]).count() == 1
    assert sorted(AnalysisFinding.objects.filter(analysis=analysis).values_list("saliency_file", flat=True)) == files
    analysis.refresh_from_db()
    assert analysis.sr_sop_instance_uid == result["sr_sop_instance_uid"]
    assert len([level for level, _, _ in findings if level == FindingLevel.SERIES]) == 2


def test_a_multi_frame_instance_is_one_finding_the_mean_of_its_frames(
    api: Any, version: Any, analyse: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    from tests.medical.conftest import MULTIFRAME, dicom_path

    # given a 10-frame MR (pydicom's test file, given the geometry it lacks: an SR's image
    # library entry describes each referenced cross-sectional image's plane)
    ds = pydicom.dcmread(dicom_path(MULTIFRAME))
    ds.PixelSpacing = [1.0, 1.0]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [0, 0, 0]
    ds.SliceThickness = 1.0
    path = tmp_path / "multiframe.dcm"
    ds.save_as(path, enforce_file_format=True)
    response = api.generic("POST", STOW, stow_body([path]), content_type=stow_content_type())
    assert response.status_code == 200, response.content
    study_uid = str(pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID)
    # when
    result = analyse(api, study_uid)
    # then one instance finding: the mean over the frames, naming the frame it concerns most
    ((row,),) = [series["instances"] for series in result["series"]]
    instance = Instance.objects.get(sop_instance_uid=row["sop_instance_uid"])
    frames = runtime.predict(version, instance_inputs(instance, version)).outputs
    assert len(frames) == 10
    mean = np.mean(np.asarray(frames), axis=0)
    assert [row["probabilities"][name] for name in CLASSES] == pytest.approx(mean.tolist(), abs=1e-6)
    label = CLASSES.index(row["suggested_label"])
    assert row["frame_number"] == int(np.argmax(np.asarray(frames)[:, label])) + 1
    # and its saliency map has the frame's size
    with Image.open(io.BytesIO(b"".join(api.get(row["saliency_url"]).streaming_content))) as image:
        assert image.size == (instance.columns, instance.rows)


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm"])
def test_ct_and_mr_images_are_analysed_with_their_results_in_the_study(
    api: Any, version: Any, analyse: Callable[..., dict[str, Any]], name: str
) -> None:
    from tests.medical.conftest import dicom_path

    # given a real CT (16 bit, in HU after its rescale) or MR slice
    path = dicom_path(name)
    response = api.generic("POST", STOW, stow_body([path]), content_type=stow_content_type())
    assert response.status_code == 200, response.content
    # when
    result = analyse(api, str(pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID))
    # then
    assert result["status"] == JobStatus.SUCCEEDED, Job.objects.get(pk=result["job"]["id"]).error
    assert result["errors"] == []
    assert result["structured_report_url"] and result["saliency_capture_url"]
    capture = Instance.objects.get(sop_instance_uid=result["saliency_sop_instance_uid"])
    source = Instance.objects.get(sop_instance_uid=pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
    assert (capture.rows, capture.columns) == (source.rows, source.columns)


def corrupt_copy(source: Path, target: Path) -> Path:
    """`source` as a new instance of its series whose JPEG pixel data cannot be decoded."""
    ds = pydicom.dcmread(source)
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xe0 this is not a JPEG \xff\xd9"])
    ds["PixelData"].VR = "OB"
    ds.save_as(target, enforce_file_format=True)
    return target


def test_an_undecodable_instance_is_a_per_instance_error_and_the_job_succeeds(
    api: Any,
    version: Any,
    study_files: list[Path],
    tmp_path: Path,
    analyse: Callable[..., dict[str, Any]],
) -> None:
    # given a study with one instance whose pixel data cannot be decoded
    broken = corrupt_copy(study_files[0], tmp_path / "broken.dcm")
    response = api.generic("POST", STOW, stow_body([*study_files, broken]), content_type=stow_content_type())
    assert response.status_code == 200, response.content
    study_uid = str(pydicom.dcmread(broken, stop_before_pixels=True).StudyInstanceUID)
    # when
    result = analyse(api, study_uid)
    # then
    assert result["status"] == JobStatus.SUCCEEDED
    broken_uid = str(pydicom.dcmread(broken, stop_before_pixels=True).SOPInstanceUID)
    assert [error["sop_instance_uid"] for error in result["errors"]] == [broken_uid]
    assert result["errors"][0]["error"]
    analysed = {row["sop_instance_uid"] for series in result["series"] for row in series["instances"]}
    assert len(analysed) == len(study_files) and broken_uid not in analysed


def test_a_study_none_of_whose_images_can_be_read_fails_the_job_with_the_reason(
    api: Any, version: Any, study_files: list[Path], tmp_path: Path, django_capture_on_commit_callbacks: Any
) -> None:
    broken = corrupt_copy(study_files[0], tmp_path / "broken.dcm")
    ds = pydicom.dcmread(broken)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.save_as(broken, enforce_file_format=True)
    assert api.generic("POST", STOW, stow_body([broken]), content_type=stow_content_type()).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = post_json(api, analyses_url(ds.StudyInstanceUID), {"model": MODEL_NAME})
    assert response.status_code == 202
    job = Job.objects.get(pk=response.json()["job"]["id"])
    assert job.status == JobStatus.FAILED
    assert "could be read" in job.error
    assert not AnalysisFinding.objects.exists()
    # and the analysis says which instance failed, and why
    analysis = Analysis.objects.get(pk=response.json()["analysis"]["id"])
    assert [error["sop_instance_uid"] for error in analysis.errors] == [ds.SOPInstanceUID]


# --- bad input --------------------------------------------------------------------------------------


@pytest.fixture
def nothing_stored() -> Iterator[None]:
    before = (Analysis.objects.count(), Job.objects.count())
    yield
    assert (Analysis.objects.count(), Job.objects.count()) == before


def test_an_unknown_model_is_404(api: Any, version: Any, stored_study: str, nothing_stored: None) -> None:
    assert_error(post_json(api, analyses_url(stored_study), {"model": "no-such-model"}), 404, "not_found")


def test_a_model_of_another_kind_is_400(
    api: Any, org: Any, version: Any, stored_study: str, nothing_stored: None
) -> None:
    RegisteredModel.objects.create(organization=org, name="credit-risk", kind="finance.credit_xgboost")
    error = assert_error(post_json(api, analyses_url(stored_study), {"model": "credit-risk"}), 400, "wrong_model_kind")
    assert "model" in error["fields"]


def test_an_unknown_alias_is_400(api: Any, version: Any, stored_study: str, nothing_stored: None) -> None:
    body = {"model": MODEL_NAME, "alias": "staging"}
    error = assert_error(post_json(api, analyses_url(stored_study), body), 400, "unknown_alias")
    assert "alias" in error["fields"]


def test_a_study_without_a_readable_image_is_400(
    api: Any, org: Any, version: Any, stored_study: str, analyse: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    # given a study holding only an SR (the analysis' own SR, sent again as a study of its own)
    result = analyse(api, stored_study)
    sr = Instance.objects.get(sop_instance_uid=result["sr_sop_instance_uid"])
    with default_storage.open(sr.file, "rb") as handle:
        ds = pydicom.dcmread(handle)
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid(), generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    path = tmp_path / "sr-only.dcm"
    ds.save_as(path, enforce_file_format=True)
    assert api.generic("POST", STOW, stow_body([path]), content_type=stow_content_type()).status_code == 200
    counts = (Analysis.objects.count(), Job.objects.count())
    # when / then
    error = assert_error(post_json(api, analyses_url(ds.StudyInstanceUID), {"model": MODEL_NAME}), 400)
    assert error["code"] == "no_readable_image"
    assert (Analysis.objects.count(), Job.objects.count()) == counts


@pytest.mark.parametrize(
    "body",
    [
        "{not json",
        "[]",
        '{"alias": "production"}',
        '{"model": ""}',
        '{"model": "' + "x" * 101 + '"}',
        '{"model": "m", "alias": null}',
    ],
)
def test_bad_bodies_are_400(api: Any, version: Any, stored_study: str, body: str, nothing_stored: None) -> None:
    response = api.generic("POST", analyses_url(stored_study), body, content_type="application/json")
    assert_error(response, 400)


def test_an_unknown_study_is_404(api: Any, version: Any, nothing_stored: None) -> None:
    assert_error(post_json(api, analyses_url("1.2.3.4"), {"model": MODEL_NAME}), 404, "not_found")
    assert_error(api.get(analyses_url("1.2.3.4")), 404)


# --- tenancy ------------------------------------------------------------------------------------------


def test_another_organizations_study_model_and_analysis_are_not_found(
    api: Any, other_api: Any, other_org: Any, version: Any, stored_study: str, analyse: Callable[..., dict[str, Any]]
) -> None:
    # given an analysis of acme, and globex holding no model
    result = analyse(api, stored_study)
    # then globex sees neither the study's analyses nor the analysis, nor its saliency map
    assert_error(other_api.get(analyses_url(stored_study)), 404)
    assert_error(other_api.get(f"{analyses_url(stored_study)}{result['id']}/"), 404)
    assert_error(other_api.get(result["series"][0]["saliency_url"]), 404)
    assert_error(post_json(other_api, analyses_url(stored_study), {"model": MODEL_NAME}), 404)
    # and globex's own copy of the study cannot be analysed with acme's model
    files = mednist_files("CXR", count=1)
    assert other_api.generic("POST", STOW, stow_body(files), content_type=stow_content_type()).status_code == 200
    assert_error(post_json(other_api, analyses_url(stored_study), {"model": MODEL_NAME}), 404)
    # and acme's study holds one analysis: globex's attempts stored nothing
    assert Analysis.objects.filter(study__organization=other_org).count() == 0


def test_the_analysis_of_another_study_of_the_same_organization_is_not_found(
    api: Any, org: Any, version: Any, stored_study: str, analyse: Callable[..., dict[str, Any]]
) -> None:
    result = analyse(api, stored_study)
    other = Study.objects.create(organization=org, patient=Study.objects.get().patient, study_instance_uid="1.2.3")
    assert_error(api.get(f"{analyses_url(other.study_instance_uid)}{result['id']}/"), 404)


def test_a_key_without_the_medical_scope_is_403(
    api_client_for: Callable[..., Any], org: Any, version: Any, stored_study: str
) -> None:
    finance = api_client_for(org, scopes=("finance",))
    assert_error(finance.get(analyses_url(stored_study)), 403)
    assert_error(post_json(finance, analyses_url(stored_study), {"model": MODEL_NAME}), 403)


def test_the_analysis_job_is_medical_data_hidden_from_other_domains(
    api: Any,
    org: Any,
    api_client_for: Callable[..., Any],
    client_for: Callable[..., Any],
    version: Any,
    stored_study: str,
    analyse: Callable[..., dict[str, Any]],
) -> None:
    result = analyse(api, stored_study)
    job_url = f"/api/v1/jobs/{result['job']['id']}/"
    assert api.get(job_url).status_code == 200
    assert_error(api_client_for(org, scopes=("finance",)).get(job_url), 404)
    for role in ("credit_analyst", "merchant"):
        response = client_for(org, role).get(job_url)
        assert response.status_code == 404, (role, response.status_code)
    assert client_for(org, "clinician").get(job_url).status_code == 200

"""Batch scoring through the API: bad files are refused up front; bad rows get row-level errors."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from apps.finance.models import CreditDecision, ScoringBatch
from tests.conftest import assert_error
from tests.finance.conftest import csv_upload

pytestmark = pytest.mark.django_db(transaction=True)

RESULT_COLUMNS = [
    "row",
    "application_id",
    "probability_of_default",
    "score",
    "decision",
    "reason_codes",
    "decision_id",
    "error",
]


def _file(content: bytes, name: str = "batch.csv") -> io.BytesIO:
    buffer = io.BytesIO(content)
    buffer.name = name
    return buffer


def _post_batch(api: Any, upload: io.BytesIO) -> Any:
    return api.post("/api/v1/finance/batches/", {"file": upload}, format="multipart")


def _results(api: Any, batch: dict[str, Any]) -> list[dict[str, str]]:
    response = api.get(f"/api/v1/finance/batches/{batch['id']}/results/")
    assert response.status_code == 200, response
    text = b"".join(response.streaming_content).decode()
    reader = csv.DictReader(io.StringIO(text))
    assert reader.fieldnames == RESULT_COLUMNS
    return list(reader)


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00binary", "not_csv"),
        (b"", "empty_file"),
        (b"one column only\nvalue\n", "not_csv"),
        (b"application_id,application_id,age\n1,1,30\n", "duplicate_columns"),
    ],
)
def test_bad_batch_files_are_400_and_store_nothing(api, trained_model, content, code, tmp_path):
    # when
    response = _post_batch(api, _file(content))
    # then
    assert_error(response, 400, code)
    assert ScoringBatch.objects.count() == 0
    assert not list((tmp_path / "media").rglob("batches/*.csv"))


def test_oversized_batch_file_is_413(api, trained_model, credit_frame, settings):
    # given a size limit smaller than the file
    settings.API_MAX_UPLOAD_BYTES = 5_000
    # when
    response = _post_batch(api, csv_upload(credit_frame.drop(columns=["default"]).head(200)))
    # then
    assert_error(response, 413, "too_large")
    assert ScoringBatch.objects.count() == 0


def test_every_kind_of_bad_row_gets_its_own_error_and_the_rest_are_scored(api, trained_model, credit_frame):
    # given 40 applications, seven of them broken in different ways
    frame = credit_frame.drop(columns=["default"]).head(40).astype(object).reset_index(drop=True)
    frame.loc[1, "loan_amount"] = "lots"  # not a number
    frame.loc[2, "checking_status"] = "A99"  # unknown category
    frame.loc[3, "num_delinquencies"] = None  # never missing in training: required
    frame.loc[4, "age"] = -5  # below the inferred minimum 0
    text = frame.to_csv(index=False).splitlines()
    # row 6 has one cell too many (a stray delimiter), row 7 is cut short: neither may sink the batch
    text[6] = text[6] + ",surplus"
    text[7] = ",".join(text[7].split(",")[:3])
    text[8] = text[8] + "9" * 200_000  # a cell beyond the csv module's field size limit
    content = ("\n".join(text) + "\n").encode()
    # when
    response = _post_batch(api, _file(content))
    # then the job succeeds with one error per bad row
    assert response.status_code == 202, response.content
    batch = api.get(f"/api/v1/finance/batches/{response.json()['id']}/").json()
    assert batch["job"]["status"] == "succeeded", batch["job"]
    summary = batch["summary"]
    assert summary["rows"] == 40
    assert summary["errors"] == 7
    assert summary["scored"] == 33
    assert sum(summary["decisions"].values()) == 33
    assert set(summary["decisions"]) == {"approve", "review", "decline"}
    assert [e["row"] for e in summary["error_examples"]] == [2, 3, 4, 5, 6, 7, 8]
    rows = _results(api, batch)
    assert len(rows) == 40
    errors = {int(r["row"]): r["error"] for r in rows if r["error"]}
    assert "loan_amount: not a number" in errors[2]
    assert "checking_status: unknown category" in errors[3]
    assert "num_delinquencies: required value is missing" in errors[4]
    assert "age: below the minimum 0" in errors[5]
    assert "the row has 16 fields, the header has 15" in errors[6]
    assert "the row has 3 fields" in errors[7]
    assert "unreadable row: field larger than field limit" in errors[8]
    for row in rows:
        if row["error"]:
            assert row["decision"] == "" and row["decision_id"] == ""
            assert row["application_id"], "bad rows keep their application id (or get <batch>-<row>)"
        else:
            assert row["decision"] in ("approve", "review", "decline")
            assert 0 < float(row["probability_of_default"]) < 1
            if row["decision"] != "approve":
                assert row["reason_codes"], "review/decline rows carry their reasons"
    assert rows[0]["application_id"] == str(frame.loc[0, "application_id"])
    assert rows[6]["application_id"] == str(frame.loc[6, "application_id"]), "a malformed row keeps its id"
    assert rows[7]["application_id"] == str(frame.loc[7, "application_id"]), "an oversized cell keeps the row's id"
    # and only the good rows are in the decision log, each with its batch row
    logged = CreditDecision.objects.filter(batch_id=batch["id"])
    assert logged.count() == 33
    assert 2 not in set(logged.values_list("batch_row", flat=True))


def test_a_chunk_of_only_bad_rows_does_not_fail_the_batch(api, trained_model, credit_frame):
    # given a file where no row is valid
    frame = credit_frame.drop(columns=["default"]).head(5).astype(object)
    frame["checking_status"] = "A99"
    # when
    response = _post_batch(api, csv_upload(frame))
    # then
    batch = api.get(f"/api/v1/finance/batches/{response.json()['id']}/").json()
    assert batch["job"]["status"] == "succeeded", batch["job"]
    assert batch["summary"]["errors"] == 5
    assert batch["summary"]["scored"] == 0
    assert all(r["error"] for r in _results(api, batch))


def test_results_before_the_job_finished_are_409(api, trained_model, credit_frame):
    # given a batch whose job has not run (the batch row exists, its results do not)
    response = _post_batch(api, csv_upload(credit_frame.drop(columns=["default"]).head(5)))
    batch = ScoringBatch.objects.get(pk=response.json()["id"])
    ScoringBatch.objects.filter(pk=batch.pk).update(results_path="")
    # when / then
    assert_error(api.get(f"/api/v1/finance/batches/{batch.pk}/results/"), 409, "not_ready")

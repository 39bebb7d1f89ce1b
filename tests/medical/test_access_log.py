"""`/api/v1/medical/access-log/` and its CSV export: the PHI access log read by org admins (and
`medical` keys), filtered per study, user, kind and time; reading it is audited itself."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pydicom
import pytest
from django.utils import timezone

from apps.medical.access_log import CSV_COLUMNS
from apps.medical.models import PhiAccess
from core.audit.models import AuditEvent
from tests.conftest import assert_error
from tests.medical.conftest import CT, MR, dicom_path

pytestmark = pytest.mark.django_db

LOG = "/api/v1/medical/access-log/"
EXPORT = "/api/v1/medical/access-log/export/"
STUDIES = "/api/v1/medical/studies/"


def uid_of(name: str) -> str:
    return str(pydicom.dcmread(dicom_path(name)).StudyInstanceUID)


@pytest.fixture
def reads(stow: Callable[..., Any], org: Any, make_member: Callable[..., Any], api: Any) -> dict[str, Any]:
    """Two studies; a clinician opens the CT, the API key searches: three PHI rows."""
    from django.test import Client

    assert stow([CT, MR]).status_code == 200
    clinician_user = make_member(org, "clinician", username="dr-house")
    clinician = Client()
    clinician.force_login(clinician_user)
    assert clinician.get(f"{STUDIES}{uid_of(CT)}/").status_code == 200
    assert api.get(STUDIES).status_code == 200
    assert api.get(f"{STUDIES}{uid_of(MR)}/").status_code == 200
    return {"clinician": clinician_user}


def rows(client: Any, **query: Any) -> list[dict[str, Any]]:
    response = client.get(LOG, query)
    assert response.status_code == 200, response.content
    return list(response.json()["results"])


def test_an_org_admin_reads_who_read_what_and_the_read_is_audited(api: Any, reads: dict[str, Any]) -> None:
    # when
    found = rows(api)
    # then: newest first, each with when, who, kind, studies, path and request id
    assert [row["kind"] for row in found] == ["metadata", "search", "metadata"]
    clinician_row = found[-1]
    assert clinician_row["who"] == "dr-house" and clinician_row["user_id"] == reads["clinician"].pk
    assert clinician_row["studies"] == [uid_of(CT)]
    assert clinician_row["path"] == f"{STUDIES}{uid_of(CT)}/"
    assert clinician_row["request_id"]
    assert sorted(found[1]["studies"]) == sorted([uid_of(CT), uid_of(MR)])
    assert found[0]["who"].startswith("api-key:") and found[0]["api_key_id"]
    assert AuditEvent.objects.filter(action="medical.access_log.read").count() == 1


@pytest.mark.parametrize(
    ("query", "kinds"),
    [
        ({"study": "CT"}, ["search", "metadata"]),
        ({"study": "MR"}, ["metadata", "search"]),
        ({"kind": "search"}, ["search"]),
        ({"user": "dr-house"}, ["metadata"]),
        ({"user": "clinician-id"}, ["metadata"]),
        ({"user": "nobody"}, []),
        ({"study": "1.2.3"}, []),
    ],
)
def test_the_log_filters(query: dict[str, str], kinds: list[str], api: Any, reads: dict[str, Any]) -> None:
    # given: the placeholders replaced by real values
    values = {"CT": uid_of(CT), "MR": uid_of(MR), "clinician-id": str(reads["clinician"].pk)}
    resolved = {key: values.get(value, value) for key, value in query.items()}
    # when / then
    assert [row["kind"] for row in rows(api, **resolved)] == kinds
    event = AuditEvent.objects.get(action="medical.access_log.read")
    assert event.details["filters"] == resolved


def test_the_log_filters_by_time(api: Any, reads: dict[str, Any]) -> None:
    now = timezone.now()
    assert len(rows(api, since=(now - timedelta(hours=1)).isoformat())) == 3
    assert rows(api, since=(now + timedelta(hours=1)).isoformat()) == []
    assert rows(api, until=(now - timedelta(hours=1)).isoformat()) == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"kind": "peek"}, "kind"),
        ({"since": "last tuesday"}, "since"),
        ({"until": "2024-02-30T00:00:00Z"}, "until"),
        ({"since": "2024-02-01T00:00:00Z", "until": "2024-01-01T00:00:00Z"}, "until"),
        ({"study": "1" * 65}, "study"),
        ({"user": "u" * 151}, "user"),
    ],
)
def test_bad_filters_are_400(query: dict[str, str], field: str, api: Any) -> None:
    for url in (LOG, EXPORT):
        error = assert_error(api.get(url, query), 400)
        assert field in error["fields"], error
    assert not AuditEvent.objects.filter(action="medical.access_log.read").exists()


def test_the_csv_export_streams_the_filtered_log(api: Any, reads: dict[str, Any]) -> None:
    # when
    response = api.get(EXPORT, {"study": uid_of(CT)}, HTTP_ACCEPT="text/csv")
    # then
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    body = b"".join(response.streaming_content).decode()
    table = list(csv.DictReader(io.StringIO(body)))
    assert tuple(table[0]) == CSV_COLUMNS
    assert [row["kind"] for row in table] == ["search", "metadata"]
    assert table[1]["who"] == "dr-house" and uid_of(CT) in table[1]["studies"].split()
    event = AuditEvent.objects.get(action="medical.access_log.read")
    assert event.details["export"] is True


def test_a_spreadsheet_formula_in_a_username_is_neutralised(
    api: Any, org: Any, make_member: Callable[..., Any], stow: Callable[..., Any]
) -> None:
    # given: a user whose name a spreadsheet would run
    from django.test import Client

    assert stow([CT]).status_code == 200
    client = Client()
    client.force_login(make_member(org, "clinician", username="=cmd"))
    client.get(f"{STUDIES}{uid_of(CT)}/")
    # when
    body = b"".join(api.get(EXPORT).streaming_content).decode()
    # then
    assert "'=cmd" in body


def test_clinicians_and_finance_keys_cannot_read_the_log(
    org: Any, client_for: Callable[..., Any], api_client_for: Callable[..., Any]
) -> None:
    for client in (client_for(org, "clinician"), api_client_for(org, scopes=("finance",))):
        assert_error(client.get(LOG), 403, "permission_denied")
        assert_error(client.get(EXPORT), 403, "permission_denied")
    assert not AuditEvent.objects.filter(action="medical.access_log.read").exists()


def test_an_org_admin_session_reads_the_log(org: Any, client_for: Callable[..., Any], reads: dict[str, Any]) -> None:
    assert len(rows(client_for(org, "org_admin"))) == 3


def test_another_organizations_log_is_not_shown(other_api: Any, reads: dict[str, Any]) -> None:
    # when: globex asks for acme's study
    assert rows(other_api, study=uid_of(CT)) == []
    assert rows(other_api) == []
    body = b"".join(other_api.get(EXPORT).streaming_content).decode()
    assert body.strip().splitlines() == [",".join(CSV_COLUMNS)]
    assert PhiAccess.objects.count() == 3

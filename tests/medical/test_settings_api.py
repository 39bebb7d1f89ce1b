"""`/api/v1/medical/settings/`: the archive policy (duplicates, de-identify on receipt and its
PS3.15 options), read by members, changed by org admins and `medical` keys, audited."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from apps.medical.models import ArchiveSettings
from core.audit.models import AuditEvent
from tests.conftest import assert_error

pytestmark = pytest.mark.django_db

URL = "/api/v1/medical/settings/"


def test_an_organization_without_a_row_reads_the_defaults(api: Any) -> None:
    # when
    response = api.get(URL)
    # then
    assert response.status_code == 200
    body = response.json()
    assert (body["duplicate_policy"], body["deidentify_on_receipt"], body["deidentify_options"]) == ("keep", False, {})


def test_an_org_admin_changes_the_policy_and_it_is_audited(api: Any, org: Any) -> None:
    # when
    response = api.patch(
        URL,
        {"duplicate_policy": "reject", "deidentify_on_receipt": True, "deidentify_options": {"retain_uids": True}},
        format="json",
    )
    # then: stored with every option spelled out, audited
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["duplicate_policy"] == "reject" and body["deidentify_on_receipt"] is True
    assert body["deidentify_options"]["retain_uids"] is True
    assert body["deidentify_options"]["clean_descriptors"] is False
    assert ArchiveSettings.objects.get(organization=org).duplicate_policy == "reject"
    event = AuditEvent.objects.get(action="medical.settings.update")
    assert event.details["deidentify_on_receipt"] is True


def test_fields_left_out_keep_their_value(api: Any) -> None:
    # given
    api.patch(URL, {"duplicate_policy": "overwrite"}, format="json")
    # when
    response = api.patch(URL, {"deidentify_on_receipt": True}, format="json")
    # then
    assert response.json()["duplicate_policy"] == "overwrite"
    assert response.json()["deidentify_on_receipt"] is True


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"duplicate_policy": "ignore"}, "duplicate_policy"),
        ({"duplicate_policy": None}, "duplicate_policy"),
        ({"deidentify_on_receipt": "maybe"}, "deidentify_on_receipt"),
        ({"deidentify_options": {"retain_names": True}}, "deidentify_options.retain_names"),
        ({"deidentify_options": {"retain_uids": "yes"}}, "deidentify_options.retain_uids"),
        ({"deidentify_options": [1, 2]}, "deidentify_options"),
        ({"deidentify_options": "retain_uids"}, "deidentify_options"),
        (
            {"deidentify_options": {"retain_long_full_dates": True, "retain_long_modified_dates": True}},
            "deidentify_options.retain_long_modified_dates",
        ),
    ],
)
def test_bad_settings_are_400_and_change_nothing(body: dict[str, Any], field: str, api: Any, org: Any) -> None:
    # when
    response = api.patch(URL, body, format="json")
    # then
    error = assert_error(response, 400)
    assert field in error["fields"], error
    assert not ArchiveSettings.objects.filter(organization=org).exists()


def test_a_body_that_is_not_json_is_400(api: Any) -> None:
    response = api.generic("PATCH", URL, b"{not json", content_type="application/json")
    assert_error(response, 400)


def test_a_clinician_reads_but_cannot_change_the_policy(org: Any, client_for: Callable[..., Any]) -> None:
    # given
    clinician = client_for(org, "clinician")
    # when / then
    assert clinician.get(URL).status_code == 200
    response = clinician.patch(URL, '{"duplicate_policy": "reject"}', content_type="application/json")
    assert_error(response, 403, "permission_denied")
    assert not ArchiveSettings.objects.exists()


def test_a_finance_only_key_is_403(org: Any, api_client_for: Callable[..., Any]) -> None:
    client = api_client_for(org, scopes=("finance",))
    assert_error(client.get(URL), 403, "permission_denied")
    assert_error(client.patch(URL, {"duplicate_policy": "reject"}, format="json"), 403, "permission_denied")


def test_each_organization_has_its_own_policy(api: Any, other_api: Any, other_org: Any) -> None:
    # when: acme changes its policy
    api.patch(URL, {"duplicate_policy": "reject"}, format="json")
    # then: globex still has the defaults
    assert other_api.get(URL).json()["duplicate_policy"] == "keep"
    assert not ArchiveSettings.objects.filter(organization=other_org).exists()

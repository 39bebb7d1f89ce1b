"""Kind-filtered registry reads every domain uses: one answer (404) for a model of another kind."""

from __future__ import annotations

import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from core.errors import NotFound
from core.tenancy.actors import Actor
from ml.selectors import registered_model_get, registered_model_list, serving_version_get
from ml.services import model_alias_set, model_version_import
from tests.ml.tiny_kind import TINY_KIND, state_dict_bytes

pytestmark = pytest.mark.django_db


def _import(org, name, weight=1.0):
    upload = SimpleUploadedFile("weights.pt", state_dict_bytes((weight, weight), 0.0))
    return model_version_import(actor=Actor.system(org), name=name, kind=TINY_KIND, upload=upload)


def test_a_model_of_another_kind_or_domain_is_not_found(org, tiny_kind):
    # given
    _import(org, "tiny")
    # then
    assert registered_model_get(org=org, name="tiny", kind=TINY_KIND).name == "tiny"
    assert registered_model_get(org=org, name="tiny", domain="tests").name == "tiny"
    with pytest.raises(NotFound):
        registered_model_get(org=org, name="tiny", kind="finance.credit_xgboost")
    with pytest.raises(NotFound):
        registered_model_get(org=org, name="tiny", domain="finance")
    with pytest.raises(NotFound):
        serving_version_get(org=org, name="tiny", domain="finance")
    assert list(registered_model_list(org=org, domain="finance")) == []


def test_serving_version_is_production_or_the_number_asked(org, tiny_kind):
    # given: v1 is production (first version), v2 exists
    v1 = _import(org, "tiny")
    v2 = _import(org, "tiny", weight=2.0)
    # then
    assert serving_version_get(org=org, name="tiny", domain="tests").pk == v1.pk
    assert serving_version_get(org=org, name="tiny", number=2, domain="tests").pk == v2.pk
    with pytest.raises(NotFound):
        serving_version_get(org=org, name="tiny", number=3, domain="tests")
    with pytest.raises(NotFound) as missing_alias:
        serving_version_get(org=org, name="tiny", alias="staging", domain="tests")
    assert missing_alias.value.code == "no_alias"


def test_without_a_name_the_default_then_the_last_promoted_serves(org, tiny_kind):
    # given: two models; "second" was promoted last
    first = _import(org, "first")
    _import(org, "second")
    second_v2 = _import(org, "second", weight=3.0)
    model_alias_set(actor=Actor.system(org), name="second", alias="production", version_number=2)
    # then
    assert serving_version_get(org=org, domain="tests").pk == second_v2.pk
    assert serving_version_get(org=org, domain="tests", default_name="first").pk == first.pk


def test_no_model_of_the_domain_is_a_no_model_not_found(org, other_org, tiny_kind):
    # given: only the other organization has one
    _import(other_org, "tiny")
    # then
    with pytest.raises(NotFound) as missing:
        serving_version_get(org=org, domain="tests")
    assert missing.value.code == "no_model"
    with pytest.raises(NotFound):
        serving_version_get(org=org, name="tiny", domain="tests")


def test_the_serving_version_is_one_query_with_or_without_a_name(org, tiny_kind, django_assert_num_queries):
    # given
    _import(org, "first")
    v2 = _import(org, "first", weight=2.0)
    model_alias_set(actor=Actor.system(org), name="first", alias="production", version_number=2)
    # then: one query on the hot path, and it is the production version
    with django_assert_num_queries(1):
        assert serving_version_get(org=org, name="first", domain="tests").pk == v2.pk
    with django_assert_num_queries(1):
        assert serving_version_get(org=org, domain="tests", default_name="first").pk == v2.pk
    with django_assert_num_queries(1):
        assert serving_version_get(org=org, domain="tests").registered_model.name == "first"


def test_a_version_number_without_a_name_is_of_the_default_model(org, tiny_kind):
    # given
    _import(org, "first")
    v2 = _import(org, "first", weight=2.0)
    # then
    assert serving_version_get(org=org, domain="tests", default_name="first", number=2).pk == v2.pk
    with pytest.raises(NotFound):
        serving_version_get(org=org, domain="tests", default_name="first", number=9)


def test_a_serving_answer_is_reused_within_the_ttl(org, tiny_kind, settings, django_assert_num_queries):
    # given
    settings.ML_SERVING_CACHE_SECONDS = 60
    v1 = _import(org, "tiny")
    assert serving_version_get(org=org, name="tiny", domain="tests").pk == v1.pk
    # then: the second answer costs no query
    with django_assert_num_queries(0):
        assert serving_version_get(org=org, name="tiny", domain="tests").pk == v1.pk


def test_an_alias_move_is_served_at_once_in_this_process(org, tiny_kind, settings):
    # given a cached answer for production = v1
    settings.ML_SERVING_CACHE_SECONDS = 60
    _import(org, "tiny")
    v2 = _import(org, "tiny", weight=2.0)
    assert serving_version_get(org=org, name="tiny", domain="tests").number == 1
    # when
    model_alias_set(actor=Actor.system(org), name="tiny", alias="production", version_number=2)
    # then
    assert serving_version_get(org=org, name="tiny", domain="tests").pk == v2.pk


def test_answers_expire_and_a_zero_ttl_always_asks(org, tiny_kind, settings, django_assert_num_queries):
    # given
    _import(org, "tiny")
    settings.ML_SERVING_CACHE_SECONDS = 0
    serving_version_get(org=org, name="tiny", domain="tests")
    with django_assert_num_queries(1):
        serving_version_get(org=org, name="tiny", domain="tests")
    # and a tiny TTL has expired by the next call
    settings.ML_SERVING_CACHE_SECONDS = 0.001
    serving_version_get(org=org, name="tiny", domain="tests")
    time.sleep(0.01)
    with django_assert_num_queries(1):
        serving_version_get(org=org, name="tiny", domain="tests")


def test_answers_are_per_organization(org, other_org, tiny_kind, settings):
    # given both organizations have a "tiny" model and acme's answer is cached
    settings.ML_SERVING_CACHE_SECONDS = 60
    ours = _import(org, "tiny")
    theirs = _import(other_org, "tiny")
    assert serving_version_get(org=org, name="tiny", domain="tests").pk == ours.pk
    # then the other organization gets its own version, never acme's
    assert serving_version_get(org=other_org, name="tiny", domain="tests").pk == theirs.pk

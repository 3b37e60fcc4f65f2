"""Study searches read per path of the visibility rule (studies.paging.ordered_keys): the same
studies as ``visible_to``, in the same order, whoever asks."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from accounts.models import Organization
from studies.browse import UPLOADED
from studies.dicomweb.qido import STUDY_ORDER
from studies.models import AccessGrant, Study
from studies.paging import Order, ordered_keys
from studies.permissions import grant_access, visible_branches
from tests.factories import SpecialistFactory, UserFactory, make_study

pytestmark = pytest.mark.django_db

GRANT = AccessGrant.Reason.CONSULT


def dated(study: Study, date: dt.date | None, time: dt.time | None = None) -> Study:
    Study.objects.filter(pk=study.pk).update(study_date=date, study_time=time)
    study.refresh_from_db()
    return study


@pytest.fixture
def world():
    """Two practices; a member of one; a physician of the other with grants into the first (one
    revoked, one expired, two of one study); a patient with a linked record; an outsider."""
    hospital = Organization.objects.create(name="Hospital")
    clinic = Organization.objects.create(name="Clinic")
    member = UserFactory(practice=hospital)
    consultant = UserFactory(practice=clinic)
    patient = UserFactory(role="patient")
    outsider = UserFactory()
    studies = [make_study(practice=hospital) for _ in range(8)]
    dates = [dt.date(2026, 1, d) for d in (5, 9, 9, 1, 30, 12, 9, 20)]
    for study, date in zip(studies, dates, strict=True):
        dated(study, date, dt.time(10, study.pk % 60))
    dated(studies[6], None)  # a study without a date sorts first (newest first, NULLs first)
    own = make_study(practice=clinic, patient_account=patient)
    dated(own, dt.date(2025, 6, 1))
    for study in studies[:5]:
        grant_access(user=consultant, study=study, reason=GRANT)
    grant_access(user=consultant, study=studies[0], reason=AccessGrant.Reason.SHARED)  # a second grant
    grant_access(user=consultant, study=studies[5], reason=GRANT).revoke(by=None)
    grant_access(user=consultant, study=studies[6], reason=GRANT, until=timezone.now() - dt.timedelta(days=1))
    grant_access(user=patient, study=studies[7], reason=AccessGrant.Reason.PATIENT_GRANT)
    specialist = SpecialistFactory()
    grant_access(user=specialist, study=studies[2], reason=GRANT)
    return {
        "member": member,
        "consultant": consultant,
        "patient": patient,
        "outsider": outsider,
        "specialist": specialist,
    }


ACTORS = ["member", "consultant", "patient", "outsider", "specialist"]


def everything(found):
    return found


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("order", [STUDY_ORDER, UPLOADED], ids=["qido", "uploaded"])
def test_branches_find_exactly_what_visible_to_finds_in_the_same_order(world, actor, order):
    user = world[actor]
    expected = list(Study.objects.visible_to(user).order_by(*order.expressions({})).values_list("pk", flat=True))
    branches = visible_branches(user)
    assert branches is not None
    assert ordered_keys(branches, everything, order, 100) == expected
    for stop in range(1, len(expected) + 1):
        assert ordered_keys(branches, everything, order, stop) == expected[:stop]


@pytest.mark.parametrize("actor", ACTORS)
def test_branches_apply_the_search_to_every_path(world, actor):
    user = world[actor]

    def in_january(found):
        return found.filter(study_date__gte=dt.date(2026, 1, 6))

    expected = list(
        in_january(Study.objects.visible_to(user)).order_by(*STUDY_ORDER.expressions({})).values_list("pk", flat=True)
    )
    assert ordered_keys(visible_branches(user), in_january, STUDY_ORDER, 100) == expected


def test_nobody_signed_in_and_administrators_search_one_queryset(world, django_user_model):
    from django.contrib.auth.models import AnonymousUser

    admin = UserFactory(role="admin")
    assert visible_branches(AnonymousUser()) is None
    assert visible_branches(admin) is None


@pytest.mark.parametrize("window", [1, 256])
def test_a_study_held_twice_by_one_branch_is_read_past_until_the_page_is_full(world, window, monkeypatch):
    """Two grants of the newest study: reading two rows of the grants gives one study, so the
    grants are read further rather than the page coming back one short."""
    from studies import paging

    monkeypatch.setattr(paging, "WALK_WINDOW", window)
    consultant = world["consultant"]
    newest = Study.objects.visible_to(consultant).order_by(*STUDY_ORDER.expressions({})).first()
    grant_access(user=consultant, study=newest, reason=AccessGrant.Reason.ADMIN)
    branches = [b for b in visible_branches(consultant) if b.walk is not None]  # the grants alone
    expected = list(
        Study.objects.filter(grants__in=AccessGrant.objects.active().filter(user=consultant))
        .distinct()
        .order_by(*STUDY_ORDER.expressions({}))
        .values_list("pk", flat=True)
    )
    for stop in (1, 2, 3):
        assert ordered_keys(branches, everything, STUDY_ORDER, stop) == expected[:stop]


def test_grants_copy_their_studys_sort_keys_however_they_are_made(world):
    study = make_study()
    dated(study, dt.date(2024, 2, 29), dt.time(8, 30))
    user = UserFactory()
    made = grant_access(user=user, study=study, reason=GRANT)
    saved = AccessGrant.objects.create(user=user, study=study, reason=AccessGrant.Reason.SHARED)
    for grant in (made, saved):
        grant.refresh_from_db()
        assert (grant.study_date, grant.study_time, grant.study_created_at) == (
            study.study_date,
            study.study_time,
            study.created_at,
        )


def test_merge_orders_nulls_first_and_descending_values_the_same_way_the_database_does():
    order = Order((("study_date", True), ("pk", True)))
    rows = [(dt.date(2026, 1, 1), 3), (None, 1), (dt.date(2026, 2, 1), 2), (dt.date(2026, 1, 1), 7)]
    merged = sorted(rows, key=order.merge_key)
    assert merged == [(None, 1), (dt.date(2026, 2, 1), 2), (dt.date(2026, 1, 1), 7), (dt.date(2026, 1, 1), 3)]


def test_a_walked_branch_reads_windows_until_enough_rows_match(world, monkeypatch):
    """The grants are read a window at a time, growing, until the search's matches fill the page."""
    from studies import paging

    monkeypatch.setattr(paging, "WALK_WINDOW", 1)
    consultant = world["consultant"]
    (grants,) = [b for b in visible_branches(consultant) if b.walk is not None]

    def late_january(found):
        return found.filter(study_date__gte=dt.date(2026, 1, 6))

    expected = list(
        late_january(Study.objects.visible_to(consultant).filter(grants__isnull=False))
        .distinct()
        .order_by(*STUDY_ORDER.expressions({}))
        .values_list("pk", flat=True)
    )
    assert ordered_keys([grants], late_january, STUDY_ORDER, 10) == expected
    assert ordered_keys([grants], late_january, STUDY_ORDER, 1) == expected[:1]


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize(
    "filters",
    [
        {"StudyDate": "20260106-20260125"},
        {"StudyDate": "20260109", "StudyTime": "1000-1030"},
        {"StudyDate": "-20260110"},
    ],
)
def test_qido_date_filters_narrow_the_walk_of_grants_and_answer_what_one_query_answers(world, actor, filters):
    from studies.dicomweb.qido import parse_qido, search_studies

    user = world[actor]
    from django.http import QueryDict

    params = QueryDict(mutable=True)
    params.update(filters)
    query = parse_qido(params, "study")
    walked, _ = search_studies(Study.objects.visible_to(user), query, str, branches=visible_branches(user))
    plain, _ = search_studies(Study.objects.visible_to(user), query, str)
    assert walked == plain


@pytest.mark.parametrize("actor", ACTORS)
def test_the_list_pages_date_filters_narrow_the_walk_of_grants_alike(world, actor):
    from studies.browse import keys_in_order, search_studies

    user = world[actor]
    filters = {"date_from": dt.date(2026, 1, 6), "date_to": dt.date(2026, 1, 25)}
    plain = list(search_studies(Study.objects.visible_to(user), filters).values_list("pk", flat=True))
    assert keys_in_order(user, filters)(100) == plain


def test_grants_written_in_bulk_take_their_studys_sort_keys_in_one_statement(world):
    study = dated(make_study(), dt.date(2023, 5, 6), dt.time(7, 8))
    user = UserFactory()
    AccessGrant.objects.bulk_create([AccessGrant(user=user, study=study, reason=GRANT)])
    assert AccessGrant.objects.filter(user=user).copy_study_keys() == 1
    grant = AccessGrant.objects.get(user=user)
    assert (grant.study_date, grant.study_time, grant.study_created_at) == (
        study.study_date,
        study.study_time,
        study.created_at,
    )


NAMES = ["Smith^Anna", "Smyth^Ben", "Garcia^Carla", "SMITHSON^David", "Rossi^Eva", "Kim^Smitha", "Sato^Greta"]


def named(world) -> list[Study]:
    """Give the world's studies distinct patient names, IDs and accession numbers, through save()
    (as the admin's forms do), so the grants' copies follow."""
    studies = list(Study.objects.select_related("patient").order_by("pk"))
    for n, study in enumerate(studies):
        study.patient.name = NAMES[n % len(NAMES)]
        study.patient.patient_id = f"MRN-{n:03d}"
        study.patient.save()
        study.accession_number = f"ACC{n:03d}"
        study.save(update_fields=["accession_number"])
    return studies


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize(
    "filters",
    [
        {"PatientName": "smi*"},
        {"PatientName": "*ith*"},
        {"PatientName": "sm?th*"},
        {"PatientName": "Smith^Anna"},
        {"PatientID": "MRN-003"},
        {"PatientID": "MRN-00*"},
        {"AccessionNumber": "ACC002"},
        {"PatientName": "*a*", "StudyDate": "20260106-20260125"},
    ],
)
def test_qido_patient_and_accession_filters_narrow_the_walk_and_answer_what_one_query_answers(world, actor, filters):
    from django.http import QueryDict

    from studies.dicomweb.qido import parse_qido, search_studies

    named(world)
    user = world[actor]
    params = QueryDict(mutable=True)
    params.update(filters)
    query = parse_qido(params, "study")
    walked, _ = search_studies(Study.objects.visible_to(user), query, str, branches=visible_branches(user))
    plain, _ = search_studies(Study.objects.visible_to(user), query, str)
    assert walked == plain


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("q", ["smith", "SMI", "mrn-004", "acc001", "anna smith", "nobody"])
def test_the_list_pages_word_search_narrows_the_walk_of_grants_alike(world, actor, q):
    from studies.browse import keys_in_order, search_studies

    named(world)
    user = world[actor]
    plain = list(search_studies(Study.objects.visible_to(user), {"q": q}).values_list("pk", flat=True))
    assert keys_in_order(user, {"q": q})(100) == plain


def test_grants_follow_a_renamed_patient_a_changed_accession_and_a_merge(world):
    from studies.admin import merge_patient

    consultant = world["consultant"]
    studies = named(world)
    granted = [s for s in studies if AccessGrant.objects.active().filter(user=consultant, study=s).exists()]
    first, second = granted[0], granted[1]

    def found(q: str) -> set[int]:
        from studies.browse import keys_in_order

        return set(keys_in_order(consultant, {"q": q})(100))

    first.patient.name = "Renamed^Person"
    first.patient.save(update_fields=["name"])
    assert first.pk in found("renamed")
    second.accession_number = "NEWACC9"
    second.save()
    assert found("newacc9") == {second.pk}
    # A merge moves studies with a bulk update; their grants take the surviving record's text.
    assert second.pk not in found("renamed")
    merge_patient(second.patient, into=first.patient, by=None)
    assert {first.pk, second.pk} <= found("renamed")


def test_grants_written_in_bulk_take_their_studys_search_text_in_one_statement(world):
    study = make_study()
    study.patient.name, study.patient.patient_id = "Bulk^Bella", "B-77"
    study.patient.save()
    Study.objects.filter(pk=study.pk).update(accession_number="A-1")
    user = UserFactory()
    AccessGrant.objects.bulk_create([AccessGrant(user=user, study=study, reason=GRANT)])
    assert AccessGrant.objects.get(user=user).study_search_text == ""
    AccessGrant.objects.filter(user=user).copy_study_keys()
    assert AccessGrant.objects.get(user=user).study_search_text == "Bulk^Bella\nB-77\nA-1"
    made = grant_access(user=UserFactory(), study=Study.objects.get(pk=study.pk), reason=GRANT)
    assert made.study_search_text == "Bulk^Bella\nB-77\nA-1"


def test_a_name_search_reads_only_the_grants_whose_text_can_match(world):
    from django.db import connection
    from django.http import QueryDict
    from django.test.utils import CaptureQueriesContext

    from studies.dicomweb.qido import parse_qido, search_studies

    named(world)
    user = world["consultant"]
    params = QueryDict(mutable=True)
    params.update({"PatientName": "smi*"})
    with CaptureQueriesContext(connection) as queries:
        search_studies(
            Study.objects.visible_to(user), parse_qido(params, "study"), str, branches=visible_branches(user)
        )
    walks = [q["sql"] for q in queries.captured_queries if '"studies_accessgrant"' in q["sql"]]
    assert walks and all("study_search_text" in sql for sql in walks)

"""Study browser pages: list, study, patient, status.json, navigation and the recent-studies include."""

from __future__ import annotations

import datetime as dt
import io
import itertools

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.template import Context, Template
from django.test.utils import CaptureQueriesContext
from django.urls import Resolver404, resolve, reverse
from django.utils import timezone
from PIL import Image

from studies.models import AccessGrant, Instance, Patient, Series, Study
from studies.navigation import nav_items
from studies.permissions import grant_access, revoke_access
from tests.factories import UserFactory, practice_of

_uids = itertools.count(1)


def new_uid(prefix: str = "1.2.826.0.1.3680043.10.543") -> str:
    return f"{prefix}.{next(_uids)}"


def png_bytes(shade: int = 128) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (4, 4), shade).save(buffer, format="PNG")
    return buffer.getvalue()


DICOM_BYTES = b"\0" * 128 + b"DICM" + b"\x02\x00\x00\x00UL\x04\x00\x00\x00\x00\x00"


def make_patient(name: str = "Doe^Jane", patient_id: str | None = None, account=None, **extra) -> Patient:
    extra.setdefault("practice", practice_of(None))
    return Patient.objects.create(name=name, patient_id=patient_id or f"PAT-{next(_uids)}", account=account, **extra)


def add_instance(series: Series, *, status: str = Instance.Status.READY, number: int = 1, reason: str = "") -> Instance:
    uid = new_uid()
    instance = Instance(
        sop_instance_uid=uid,
        series=series,
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
        instance_number=number,
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        rows=4,
        columns=4,
        has_pixel_data=status != Instance.Status.NO_IMAGE,
        size=len(DICOM_BYTES),
        sha256="0" * 64,
        status=Instance.Status.PENDING,
    )
    instance.file.save(f"{uid}.dcm", ContentFile(DICOM_BYTES), save=False)
    instance.save()
    if status == Instance.Status.READY:
        instance.mark_rendered(default_storage.save(f"thumbnails/{uid}.png", ContentFile(png_bytes(number * 20 % 256))))
    elif status == Instance.Status.FAILED:
        instance.mark_failed(reason=reason or "Unsupported transfer syntax")
    elif status == Instance.Status.NO_IMAGE:
        instance.mark_no_image()
    return instance


def make_study(
    owner=None,
    *,
    patient: Patient | None = None,
    description: str = "CT head",
    study_date: dt.date | None = dt.date(2026, 3, 14),
    modality: str = "CT",
    statuses: tuple[str, ...] = (Instance.Status.READY,),
    series_count: int = 1,
) -> Study:
    patient = patient or make_patient()
    study = Study.objects.create(
        study_instance_uid=new_uid(),
        practice=patient.practice,
        patient=patient,
        study_date=study_date,
        description=description,
        accession_number=f"ACC{next(_uids)}",
        modalities=modality,
        uploaded_by=owner,
    )
    for series_number in range(1, series_count + 1):
        series = Series.objects.create(
            series_instance_uid=new_uid(), study=study, modality=modality, series_number=series_number
        )
        for number, status in enumerate(statuses, start=1):
            add_instance(series, status=status, number=number)
    if owner is not None:
        grant_access(user=owner, study=study, reason=AccessGrant.Reason.UPLOADER)
    return study


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def signed_in(client):
    def sign_in(user):
        client.force_login(user)
        return client

    return sign_in


def study_url(study: Study) -> str:
    return reverse("studies:detail", args=[study.study_instance_uid])


def status_url(study: Study) -> str:
    return reverse("studies:status", args=[study.study_instance_uid])


def listed_uids(response) -> list[str]:
    return [study.study_instance_uid for study in response.context["page"].object_list]


# ---- Study list ----


def test_study_list_shows_only_visible_studies(signed_in, physician, outsider):
    mine = make_study(physician, description="Mine")
    theirs = make_study(outsider, description="Theirs")
    response = signed_in(physician).get(reverse("studies:list"))
    assert response.status_code == 200
    assert listed_uids(response) == [mine.study_instance_uid]
    assert theirs.study_instance_uid not in response.content.decode()


def test_anonymous_user_is_sent_to_sign_in_from_study_list(client, db):
    response = client.get(reverse("studies:list"))
    assert response.status_code == 302
    assert reverse("account_login") in response["Location"]


def test_study_list_search_matches_patient_name_words_in_any_order(signed_in, physician):
    jane = make_study(physician, patient=make_patient("Doe^Jane"))
    make_study(physician, patient=make_patient("Roe^Richard"))
    response = signed_in(physician).get(reverse("studies:list"), {"q": "jane doe"})
    assert listed_uids(response) == [jane.study_instance_uid]


def test_study_list_search_matches_patient_id(signed_in, physician):
    wanted = make_study(physician, patient=make_patient("Doe^Jane", patient_id="MRN-4711"))
    make_study(physician, patient=make_patient("Doe^John", patient_id="MRN-9000"))
    response = signed_in(physician).get(reverse("studies:list"), {"q": "4711"})
    assert listed_uids(response) == [wanted.study_instance_uid]


def test_study_list_filters_by_date_range(signed_in, physician):
    make_study(physician, study_date=dt.date(2025, 12, 31))
    inside = make_study(physician, study_date=dt.date(2026, 1, 15))
    make_study(physician, study_date=dt.date(2026, 2, 1))
    make_study(physician, study_date=None)
    response = signed_in(physician).get(reverse("studies:list"), {"date_from": "2026-01-01", "date_to": "2026-01-31"})
    assert listed_uids(response) == [inside.study_instance_uid]


def test_bad_date_in_filter_is_a_form_error_not_a_server_error(signed_in, physician):
    study = make_study(physician)
    response = signed_in(physician).get(reverse("studies:list"), {"date_from": "notadate", "q": "doe"})
    assert response.status_code == 200
    assert "date_from" in response.context["form"].errors
    assert "Enter a valid date" in response.content.decode()
    # The valid part of the search still applies.
    assert listed_uids(response) == [study.study_instance_uid]


def test_date_range_ending_before_it_starts_is_a_form_error(signed_in, physician):
    make_study(physician)
    response = signed_in(physician).get(reverse("studies:list"), {"date_from": "2026-02-01", "date_to": "2026-01-01"})
    assert response.status_code == 200
    assert "before its start" in response.content.decode()


def test_study_list_filters_by_modality(signed_in, physician):
    make_study(physician, modality="CT")
    mr = make_study(physician, modality="MR")
    response = signed_in(physician).get(reverse("studies:list"), {"modality": "MR"})
    assert listed_uids(response) == [mr.study_instance_uid]


def test_unknown_modality_is_a_form_error(signed_in, physician):
    make_study(physician, modality="CT")
    response = signed_in(physician).get(reverse("studies:list"), {"modality": "<script>"})
    assert response.status_code == 200
    assert "modality" in response.context["form"].errors
    assert "<script>" not in response.content.decode()


def test_modality_choices_are_the_same_for_everyone_and_reveal_nothing(signed_in, physician, outsider):
    make_study(physician, modality="CT")
    make_study(outsider, modality="XC")
    mine = signed_in(physician).get(reverse("studies:list")).context["form"].fields["modality"].choices
    theirs = signed_in(outsider).get(reverse("studies:list")).context["form"].fields["modality"].choices
    assert mine == theirs
    assert ("CT", "CT") in mine and ("MR", "MR") in mine


def test_the_count_stops_at_its_limit_and_says_more_than(signed_in, physician, monkeypatch):
    from studies import paging

    monkeypatch.setattr(paging, "COUNT_LIMIT", 2)
    monkeypatch.setattr("studies.views.browse.STUDIES_PER_PAGE", 1)
    for _ in range(5):
        make_study(physician)
    first = signed_in(physician).get(reverse("studies:list"))
    text = first.content.decode()
    assert "More than 2 studies" in text and "Last »" not in text and "Next ›" in text
    # Further on, it counts one page past the page shown, so "next" keeps leading on to the end.
    third = signed_in(physician).get(reverse("studies:list"), {"page": 3})
    assert third.context["page"].has_next() and third.context["page"].paginator.capped
    fourth = signed_in(physician).get(reverse("studies:list"), {"page": 4})
    assert fourth.context["page"].has_next()
    fifth = signed_in(physician).get(reverse("studies:list"), {"page": 5})
    assert not fifth.context["page"].has_next() and not fifth.context["page"].paginator.capped


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("newest", ["b", "c", "a"]),
        ("oldest", ["a", "c", "b"]),
        ("patient", ["a", "b", "c"]),
        ("modality", ["c", "a", "b"]),
        ("uploaded", ["c", "b", "a"]),
    ],
)
def test_study_list_sorts(signed_in, physician, sort, expected):
    studies = {
        "a": make_study(physician, patient=make_patient("Alpha^A"), study_date=dt.date(2020, 1, 1), modality="MR"),
        "b": make_study(physician, patient=make_patient("Bravo^B"), study_date=dt.date(2024, 1, 1), modality="US"),
        "c": make_study(physician, patient=make_patient("Charlie^C"), study_date=dt.date(2022, 1, 1), modality="CT"),
    }
    by_uid = {study.study_instance_uid: key for key, study in studies.items()}
    response = signed_in(physician).get(reverse("studies:list"), {"sort": sort})
    assert [by_uid[uid] for uid in listed_uids(response)] == expected


def test_unknown_sort_is_a_form_error_and_the_default_order_applies(signed_in, physician):
    make_study(physician)
    response = signed_in(physician).get(reverse("studies:list"), {"sort": "drop table"})
    assert response.status_code == 200
    assert "sort" in response.context["form"].errors


def test_study_list_paginates_by_25_and_keeps_filters_in_page_links(signed_in, physician):
    patient = make_patient("Doe^Jane")
    for _ in range(27):
        make_study(physician, patient=patient, statuses=())
    client = signed_in(physician)
    first = client.get(reverse("studies:list"), {"q": "doe"})
    assert len(first.context["page"].object_list) == 25
    assert first.context["page"].paginator.num_pages == 2
    assert "?q=doe&amp;page=2" in first.content.decode()
    second = client.get(reverse("studies:list"), {"q": "doe", "page": "2"})
    assert len(second.context["page"].object_list) == 2
    assert not set(listed_uids(first)) & set(listed_uids(second))


def test_bad_page_number_shows_a_page_not_an_error(signed_in, physician):
    make_study(physician)
    client = signed_in(physician)
    assert client.get(reverse("studies:list"), {"page": "abc"}).context["page"].number == 1
    assert client.get(reverse("studies:list"), {"page": "999"}).context["page"].number == 1


def test_study_list_shows_first_ready_thumbnail_through_the_checked_url(signed_in, physician):
    study = make_study(physician, statuses=(Instance.Status.FAILED, Instance.Status.READY, Instance.Status.READY))
    first_ready = Instance.objects.filter(series__study=study, status=Instance.Status.READY).order_by(
        "instance_number"
    )[0]
    response = signed_in(physician).get(reverse("studies:list"))
    html = response.content.decode()
    assert reverse("studies:thumbnail", args=[study.study_instance_uid, first_ready.sop_instance_uid]) in html
    assert "/media/" not in html
    row = response.context["page"].object_list[0]
    assert (row.series_count, row.instance_count, row.failed_count, row.pending_count) == (1, 3, 1, 0)


def test_study_without_ready_thumbnail_shows_placeholder(signed_in, physician):
    make_study(physician, statuses=(Instance.Status.PENDING,))
    html = signed_in(physician).get(reverse("studies:list")).content.decode()
    assert "thumb-pending" in html
    assert "/thumbnail" not in html


def test_empty_study_list_says_no_studies_yet(signed_in, physician):
    html = signed_in(physician).get(reverse("studies:list")).content.decode()
    assert "No studies yet." in html


def test_filter_without_matches_says_so(signed_in, physician):
    make_study(physician)
    html = signed_in(physician).get(reverse("studies:list"), {"q": "nobody"}).content.decode()
    assert "No studies match these filters." in html


def _list_queries(client, url) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def test_study_list_query_count_does_not_grow_with_rows(signed_in, physician, django_assert_max_num_queries):
    client = signed_in(physician)
    for _ in range(3):
        make_study(physician, statuses=(Instance.Status.READY, Instance.Status.PENDING), series_count=2)
    with_three = _list_queries(client, reverse("studies:list"))
    for _ in range(27):
        make_study(physician, statuses=(Instance.Status.READY, Instance.Status.PENDING), series_count=2)
    # Once the matches outrun the page they are counted (up to a limit): one more query per path
    # of the visibility rule (own records, practices; grants: their keys, then their studies).
    with django_assert_max_num_queries(with_three + 4):
        with_thirty = _list_queries(client, reverse("studies:list"))
    for _ in range(20):
        make_study(physician)
    with django_assert_max_num_queries(with_thirty):
        response = client.get(reverse("studies:list"))
    assert len(response.context["page"].object_list) == 25


def test_patient_page_query_count_does_not_grow_with_rows(signed_in, physician, django_assert_max_num_queries):
    client = signed_in(physician)
    patient = make_patient()
    for _ in range(3):
        make_study(physician, patient=patient)
    url = reverse("studies:patient", args=[patient.pk])
    with_three = _list_queries(client, url)
    for _ in range(27):
        make_study(physician, patient=patient)
    with django_assert_max_num_queries(with_three):
        response = client.get(url)
    assert len(response.context["studies"]) == 30


def test_study_page_query_count_does_not_grow_with_instances(signed_in, physician, django_assert_max_num_queries):
    client = signed_in(physician)
    small = make_study(physician, statuses=(Instance.Status.READY,) * 2, series_count=1)
    big = make_study(physician, statuses=(Instance.Status.READY,) * 10, series_count=4)
    with_small = _list_queries(client, study_url(small))
    with django_assert_max_num_queries(with_small):
        client.get(study_url(big))


# ---- Study page ----


def test_study_page_shows_patient_attributes_series_strips_and_counts(signed_in, physician):
    patient = make_patient("Doe^Jane", patient_id="MRN-1", birth_date=dt.date(1970, 5, 6), sex="F")
    study = make_study(
        physician,
        patient=patient,
        description="MR brain",
        statuses=(Instance.Status.READY, Instance.Status.PENDING, Instance.Status.NO_IMAGE),
        series_count=2,
    )
    ready = Instance.objects.filter(series__study=study, status=Instance.Status.READY).first()
    response = signed_in(physician).get(study_url(study))
    html = response.content.decode()
    assert response.status_code == 200
    for text in ("Doe Jane", "MRN-1", "6 May 1970", "MR brain", study.accession_number, "Series 1", "Series 2"):
        assert text in html
    assert reverse("studies:thumbnail", args=[study.study_instance_uid, ready.sop_instance_uid]) in html
    assert "img/no-image.svg" in html
    assert response.context["counts"] == {"pending": 2, "ready": 2, "no_image": 2, "failed": 0}
    assert 'data-pending="2"' in html
    assert "/media/" not in html


def test_study_page_shows_failure_badge_with_reason(signed_in, physician):
    study = make_study(physician, statuses=())
    add_instance(study.series.get(), status=Instance.Status.FAILED, reason="JPEG 2000 decoder missing")
    html = signed_in(physician).get(study_url(study)).content.decode()
    assert "Failed" in html
    assert "JPEG 2000 decoder missing" in html


def test_study_page_loads_its_script_as_a_module_without_inline_script(signed_in, physician):
    study = make_study(physician)
    response = signed_in(physician).get(study_url(study))
    html = response.content.decode()
    assert '<script type="module" src="/static/js/study.js"></script>' in html
    assert "<script>" not in html
    assert " style=" not in html
    assert "script-src 'self'" in response["Content-Security-Policy"]


def test_study_page_escapes_dicom_text(signed_in, physician):
    study = make_study(physician, description="<img src=x onerror=alert(1)>")
    html = signed_in(physician).get(study_url(study)).content.decode()
    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_upload_path_is_never_taken_for_a_study_uid():
    try:
        match = resolve("/studies/upload/")
    except Resolver404:
        return
    assert match.url_name != "detail"


# ---- status.json ----


def test_status_json_counts_and_lists_instances(signed_in, physician):
    study = make_study(physician, statuses=(Instance.Status.READY, Instance.Status.PENDING))
    add_instance(study.series.get(), status=Instance.Status.FAILED, number=3, reason="Truncated pixel data")
    response = signed_in(physician).get(status_url(study))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"]
    data = response.json()
    assert data["counts"] == {"pending": 1, "ready": 1, "no_image": 0, "failed": 1}
    assert data["total"] == 3
    assert data["done"] is False
    by_status = {item["status"]: item for item in data["instances"]}
    ready = by_status["ready"]
    assert ready["thumbnail_url"] == reverse(
        "studies:thumbnail", args=[study.study_instance_uid, ready["sop_instance_uid"]]
    )
    assert by_status["pending"]["thumbnail_url"] is None
    assert by_status["failed"]["failure_reason"] == "Truncated pixel data"


def test_status_json_follows_rendering_progress(signed_in, physician):
    study = make_study(physician, statuses=(Instance.Status.PENDING,))
    client = signed_in(physician)
    assert client.get(status_url(study)).json()["done"] is False
    instance = Instance.objects.get(series__study=study)
    instance.mark_rendered(default_storage.save("thumbnails/late.png", ContentFile(png_bytes())))
    data = client.get(status_url(study)).json()
    assert data["done"] is True
    assert data["instances"][0]["status"] == "ready"
    assert data["instances"][0]["thumbnail_url"].endswith("/thumbnail")


def test_status_json_rejects_post(signed_in, physician):
    study = make_study(physician)
    assert signed_in(physician).post(status_url(study)).status_code == 405


# ---- Patient page ----


def test_patient_page_shows_demographics_and_visible_studies_only(signed_in, physician, outsider):
    patient = make_patient("Doe^Jane", patient_id="MRN-77", sex="F")
    mine = make_study(physician, patient=patient, description="Visible one")
    hidden = make_study(outsider, patient=patient, description="Somebody else's")
    response = signed_in(physician).get(reverse("studies:patient", args=[patient.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Doe Jane" in html and "MRN-77" in html
    assert [s.study_instance_uid for s in response.context["studies"]] == [mine.study_instance_uid]
    assert hidden.study_instance_uid not in html


def test_patient_page_of_unknown_patient_is_404(signed_in, physician):
    assert signed_in(physician).get(reverse("studies:patient", args=[999999])).status_code == 404


# ---- Permissions ----


def _page_urls(study: Study) -> list[str]:
    return [study_url(study), status_url(study), reverse("studies:patient", args=[study.patient_id])]


@pytest.mark.parametrize("page", ["study", "status", "patient"])
def test_outsider_physician_gets_404(signed_in, physician, outsider, page):
    study = make_study(physician)
    url = dict(zip(["study", "status", "patient"], _page_urls(study), strict=True))[page]
    assert signed_in(outsider).get(url).status_code == 404


@pytest.mark.parametrize("page", ["study", "status", "patient"])
def test_unlinked_patient_gets_404(signed_in, physician, patient_user, page):
    study = make_study(physician, patient=make_patient("Doe^Jane"))
    url = dict(zip(["study", "status", "patient"], _page_urls(study), strict=True))[page]
    assert signed_in(patient_user).get(url).status_code == 404


def test_unknown_study_uid_is_404(signed_in, physician):
    assert signed_in(physician).get(reverse("studies:detail", args=["1.2.3.4"])).status_code == 404


def test_linked_patient_sees_their_study_patient_page_and_status(signed_in, physician, patient_user):
    study = make_study(physician, patient=make_patient("Patient^Pat", account=patient_user))
    client = signed_in(patient_user)
    for url in _page_urls(study):
        assert client.get(url).status_code == 200, url
    assert listed_uids(client.get(reverse("studies:list"))) == [study.study_instance_uid]


def test_admin_sees_every_study(signed_in, physician, admin_user):
    study = make_study(physician)
    client = signed_in(admin_user)
    for url in _page_urls(study):
        assert client.get(url).status_code == 200, url
    assert study.study_instance_uid in listed_uids(client.get(reverse("studies:list")))


def test_shared_colleague_sees_study_until_the_grant_is_revoked(signed_in, physician, colleague):
    study = make_study(physician)
    grant_access(user=colleague, study=study, reason=AccessGrant.Reason.SHARED, granted_by=physician)
    client = signed_in(colleague)
    assert client.get(study_url(study)).status_code == 200
    revoke_access(user=colleague, study=study, reason=AccessGrant.Reason.SHARED, by=physician)
    assert client.get(study_url(study)).status_code == 404
    assert client.get(status_url(study)).status_code == 404


def test_expired_grant_gives_404(signed_in, physician, colleague):
    study = make_study(physician)
    grant = grant_access(user=colleague, study=study, reason=AccessGrant.Reason.SHARED)
    grant.until = timezone.now() - dt.timedelta(minutes=1)
    grant.save()
    assert signed_in(colleague).get(study_url(study)).status_code == 404


def test_specialist_without_grant_gets_404(signed_in, physician, specialist):
    study = make_study(physician)
    assert signed_in(specialist).get(study_url(study)).status_code == 404


# ---- Navigation and the recent-studies include ----


def test_navigation_offers_studies_to_clinicians_and_my_images_to_patients(
    physician, specialist, admin_user, patient_user
):
    for user in (physician, specialist, admin_user):
        labels = [item["label"] for item in nav_items(user)]
        assert labels[0] == "Studies"
        assert "My images" not in labels
    patient_items = nav_items(patient_user)
    assert [item["label"] for item in patient_items] == ["My images", "My records"]
    assert patient_items[0]["url"] == reverse("portal:home")  # the patient portal


def test_navigation_appears_in_the_page(signed_in, physician):
    html = signed_in(physician).get(reverse("studies:list")).content.decode()
    assert f'href="{reverse("studies:list")}" aria-current="page"' in html


def test_recent_studies_include_shows_five_latest_visible(physician, outsider):
    made = [make_study(physician, description=f"Study {n}", statuses=()) for n in range(7)]
    make_study(outsider, description="Not mine")
    html = Template('{% include "studies/_recent_studies.html" %}').render(Context({"user": physician}))
    for study in made[2:]:
        assert study.description in html
    for study in made[:2]:
        assert f">{study.description}<" not in html
    assert "Not mine" not in html


def test_recent_studies_include_has_an_empty_state(db):
    user = UserFactory(role="physician", email="fresh@example.com")
    html = Template('{% include "studies/_recent_studies.html" %}').render(Context({"user": user}))
    assert "No studies yet." in html


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("House^Gregory", "House Gregory"),
        ("Yamada^Tarou=山田^太郎=やまだ^たろう", "Yamada Tarou"),
        ("=山田^太郎", "山田 太郎"),
        ("", ""),
    ],
)
def test_person_name_filter_shows_dicom_names_as_words(raw, shown):
    assert Template("{% load study_browse %}{{ name|person_name }}").render(Context({"name": raw})) == shown


def test_study_page_shows_referring_physician_as_words(signed_in, physician):
    study = make_study(physician)
    Study.objects.filter(pk=study.pk).update(referring_physician="House^Gregory")
    assert "House Gregory" in signed_in(physician).get(study_url(study)).content.decode()


def test_study_page_links_to_the_viewer_for_the_study_and_each_series(signed_in, physician):
    study = make_study(physician, series_count=2)
    html = signed_in(physician).get(study_url(study)).content.decode()
    viewer = reverse("studies:viewer", args=[study.study_instance_uid])
    assert f'href="{viewer}"' in html
    for series in study.series.all():
        assert f"{viewer}?series={series.series_instance_uid}" in html


@pytest.fixture
def upload_page_exists(monkeypatch):
    """Pretend the upload page's route is there, whichever order the apps' work lands in."""
    import studies.navigation
    import studies.views.browse

    def fake_reverse(name, *args, **kwargs):
        return "/studies/upload/" if name == "studies:upload" else reverse(name, *args, **kwargs)

    monkeypatch.setattr(studies.navigation, "reverse", fake_reverse)
    monkeypatch.setattr(studies.views.browse, "reverse", fake_reverse)


def test_clinicians_get_an_upload_entry_and_empty_state_link(signed_in, physician, upload_page_exists):
    assert {"label": "Upload", "url": "/studies/upload/", "key": "upload"} in nav_items(physician)
    html = signed_in(physician).get(reverse("studies:list")).content.decode()
    assert "No studies yet." in html
    assert 'href="/studies/upload/"' in html


def test_patients_get_no_upload_entry_or_link(signed_in, patient_user, upload_page_exists):
    assert [item["label"] for item in nav_items(patient_user)] == ["My images", "My records"]
    html = signed_in(patient_user).get(reverse("studies:list")).content.decode()
    assert "/studies/upload/" not in html
    assert "Your images appear here" in html

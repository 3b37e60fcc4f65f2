"""The study viewer page: who may open it and what it hands to the browser."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def viewer_url(study) -> str:
    return reverse("studies:viewer", args=[study.study_instance_uid])


def viewer_attrs(html: str) -> dict[str, str]:
    match = re.search(r"<section class=\"viewer\" data-viewer(.*?)>", html, re.S)
    assert match, "no viewer element on the page"
    return dict(re.findall(r'data-([a-z-]+)="([^"]*)"', match.group(1)))


def test_viewer_url_is_under_the_study():
    assert reverse("studies:viewer", args=["1.2.3"]) == "/studies/1.2.3/view/"


def test_anonymous_user_is_sent_to_sign_in(client, study):
    response = client.get(viewer_url(study))
    assert response.status_code == 302
    assert reverse("account_login") in response["Location"]


def test_outsider_gets_404_for_viewer(client, study, outsider):
    client.force_login(outsider)
    assert client.get(viewer_url(study)).status_code == 404


def test_unknown_study_is_404(client, physician):
    client.force_login(physician)
    assert client.get(reverse("studies:viewer", args=["9.9.9.9"])).status_code == 404


DRAWING_NOTE = "Measurements are saved on a consult: open the viewer from a consult to measure and annotate."


def test_owner_gets_viewer_with_study_data_attributes(client, image_study, physician):
    client.force_login(physician)
    response = client.get(viewer_url(image_study))
    assert response.status_code == 200
    html = response.content.decode()
    attrs = viewer_attrs(html)
    assert attrs["study-uid"] == image_study.study_instance_uid
    assert attrs["dicomweb-root"] == "/dicomweb"
    assert attrs["patient-name"] == "Doe Jane"
    assert 'data-tool="wl"' in html
    assert "js/viewer/main.js" in html
    assert 'type="module"' in html


def test_standalone_viewer_has_no_drawing_tools_and_says_where_to_measure(client, image_study, physician):
    # Nothing drawn here would be kept: the tools are off, and the sentence says why.
    client.force_login(physician)
    html = client.get(viewer_url(image_study)).content.decode()
    assert viewer_attrs(html)["read-only"] == "true"
    for tool in ('data-tool="length"', 'data-tool="ellipse"', 'data-tool="text"', 'data-action="key-image"'):
        assert tool not in html
    assert DRAWING_NOTE in html
    assert 'data-action="expand"' not in html


def test_linked_patient_gets_read_only_viewer_without_editing_tools_or_the_note(client, image_study, patient_user):
    client.force_login(patient_user)
    response = client.get(viewer_url(image_study))
    assert response.status_code == 200
    html = response.content.decode()
    assert viewer_attrs(html)["read-only"] == "true"
    assert 'data-tool="length"' not in html
    assert 'data-action="key-image"' not in html
    assert 'data-tool="wl"' in html
    assert DRAWING_NOTE not in html


def test_series_to_open_first_comes_from_the_query(client, study, physician):
    client.force_login(physician)
    series_uid = study.series.get().series_instance_uid
    response = client.get(viewer_url(study), {"series": series_uid})
    assert viewer_attrs(response.content.decode())["series-uid"] == series_uid


def test_viewer_page_has_no_inline_script(client, image_study, physician):
    client.force_login(physician)
    html = client.get(viewer_url(image_study)).content.decode()
    for tag in re.findall(r"<script[^>]*>", html):
        assert "src=" in tag or 'type="application/json"' in tag, f"inline script: {tag}"
    assert " style=" not in html


def test_viewer_post_is_refused(client, study, physician):
    client.force_login(physician)
    assert client.post(viewer_url(study)).status_code == 405


def test_series_list_is_embedded_as_escaped_json(client, physician):
    from tests.viewer.conftest import add_instance, create_study

    study = create_study(uploader=physician)
    series = study.series.get()
    add_instance(series, f"{study.study_instance_uid}.1.1")
    series.description = "</script><b>x</b>"
    series.series_number = 3
    series.save()
    client.force_login(physician)
    html = client.get(viewer_url(study)).content.decode()
    match = re.search(r'<script type="application/json" data-series-list>(.*?)</script>', html, re.S)
    assert match
    assert "<b>" not in match.group(1)
    [row] = json.loads(match.group(1))
    assert row["0020000E"]["Value"] == [series.series_instance_uid]
    assert row["0008103E"]["Value"] == ["</script><b>x</b>"]
    assert row["00200011"]["Value"] == [3]
    assert row["00201209"]["Value"] == [1]


def test_only_images_are_counted_and_series_without_images_are_left_out(client, physician):
    from studies.models import Series
    from tests.viewer.conftest import add_instance, create_study

    study = create_study(uploader=physician)
    images = study.series.get()
    add_instance(images, f"{images.series_instance_uid}.1", number=1)
    add_instance(images, f"{images.series_instance_uid}.2", number=2)
    add_instance(images, f"{images.series_instance_uid}.3", number=3, pixels=False)  # e.g. a secondary object
    plan = Series.objects.create(series_instance_uid=f"{study.study_instance_uid}.2", study=study, modality="RTPLAN")
    add_instance(plan, f"{plan.series_instance_uid}.1", pixels=False)
    client.force_login(physician)
    html = client.get(viewer_url(study)).content.decode()
    match = re.search(r'<script type="application/json" data-series-list>(.*?)</script>', html, re.S)
    [row] = json.loads(match.group(1))
    assert row["0020000E"]["Value"] == [images.series_instance_uid]
    assert row["00201209"]["Value"] == [2]


def test_rt_plan_only_study_shows_a_sentence_instead_of_the_viewer(client, physician):
    from tests.viewer.conftest import add_instance, create_study

    study = create_study(uploader=physician)
    series = study.series.get()
    series.modality = "RTPLAN"
    series.save()
    add_instance(series, f"{series.series_instance_uid}.1", pixels=False)
    client.force_login(physician)
    response = client.get(viewer_url(study))
    assert response.status_code == 200
    html = response.content.decode()
    assert "This study has no images to show: it holds 1 RT plan, which the viewer does not display." in html
    assert "data-empty" in html
    for absent in ("data-series-list", "data-first-instance", "data-canvas", 'data-tool="wl"', 'rel="preload"'):
        assert absent not in html


def test_first_image_header_is_embedded_so_its_pixels_load_at_once(client, study, physician):
    from studies.models import Instance

    series = study.series.get()
    metadata = {
        "00080018": {"vr": "UI", "Value": ["1.2.3.4.2"]},
        "00280010": {"vr": "US", "Value": [512]},
        "00280011": {"vr": "US", "Value": [512]},
        "00280100": {"vr": "US", "Value": [16]},
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Not^Needed"}]},
        "7FE00010": {"vr": "OW"},
    }
    for number, uid in ((2, "1.2.3.4.2"), (1, "1.2.3.4.1")):
        Instance.objects.create(
            sop_instance_uid=uid,
            series=series,
            sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
            instance_number=number,
            transfer_syntax_uid="1.2.840.10008.1.2.1",
            has_pixel_data=True,
            sha256="0" * 64,
            metadata=dict(metadata, **{"00080018": {"vr": "UI", "Value": [uid]}}),
        )
    client.force_login(physician)
    html = client.get(viewer_url(study)).content.decode()
    match = re.search(r'<script type="application/json" data-first-instance>(.*?)</script>', html, re.S)
    assert match
    first = json.loads(match.group(1))
    assert first["series_uid"] == series.series_instance_uid
    assert first["dataset"]["00080018"]["Value"] == ["1.2.3.4.1"]
    assert first["dataset"]["00280010"]["Value"] == [512]
    assert "00100010" not in first["dataset"]
    assert "7FE00010" not in first["dataset"]
    # The browser starts both downloads while the scripts are still loading.
    series_url = f"/dicomweb/studies/{study.study_instance_uid}/series/{series.series_instance_uid}"
    preloads = re.findall(r'<link rel="preload" as="fetch" crossorigin href="([^"]+)">', html)
    assert preloads == [f"{series_url}/metadata", f"{series_url}/instances/1.2.3.4.1/frames/1"]


def test_study_without_images_embeds_no_first_image(client, study, physician):
    client.force_login(physician)
    html = client.get(viewer_url(study)).content.decode()
    assert "data-first-instance" not in html


def test_viewer_context_for_share_link_pages_is_read_only_for_anonymous_visitors(study):
    from django.contrib.auth.models import AnonymousUser
    from django.template.loader import render_to_string

    from studies.viewer import viewer_context

    context = viewer_context(AnonymousUser(), study, dicomweb_root="/share/abc/dicomweb")
    assert context["read_only"] is True
    html = render_to_string("viewer/_viewer.html", context)
    attrs = viewer_attrs(html)
    assert attrs["read-only"] == "true"
    assert attrs["dicomweb-root"] == "/share/abc/dicomweb"
    assert 'data-tool="length"' not in html


def test_specialist_with_access_is_told_where_to_measure(client, image_study, specialist):
    from studies.models import AccessGrant
    from studies.permissions import grant_access

    grant_access(user=specialist, study=image_study, reason=AccessGrant.Reason.CONSULT, source="c1")
    client.force_login(specialist)
    html = client.get(viewer_url(image_study)).content.decode()
    assert viewer_attrs(html)["read-only"] == "true"
    assert DRAWING_NOTE in html


# The consult page embeds the same viewer: there the care team draws, and it is saved.


@pytest.fixture
def accepted_consult(image_study, physician, specialist, django_capture_on_commit_callbacks):
    from consultations import actions
    from tests.factories import ConsultFactory

    consult = ConsultFactory(requester=physician, study=image_study)
    with django_capture_on_commit_callbacks(execute=True):
        actions.submit_consult(consult, by=physician)
        actions.accept_consult(consult, by=specialist)
    consult.refresh_from_db()
    return consult


def test_consult_viewer_has_the_drawing_tools_key_image_list_and_expand(client, accepted_consult, specialist):
    client.force_login(specialist)
    html = client.get(f"/consults/{accepted_consult.pk}/").content.decode()
    assert viewer_attrs(html)["read-only"] == "false"
    for control in ('data-tool="length"', 'data-tool="ellipse"', 'data-action="key-image"', 'data-action="list"'):
        assert control in html
    assert 'data-action="expand"' in html
    assert DRAWING_NOTE not in html
    assert 'data-can-write="true"' in html
    assert 'id="viewer"' in html
    # No way out to a viewer that would not keep the consult's annotations.
    assert f'href="{viewer_url(accepted_consult.study)}"' not in html


def test_consult_requester_draws_too(client, accepted_consult, physician):
    client.force_login(physician)
    html = client.get(f"/consults/{accepted_consult.pk}/").content.decode()
    assert 'data-tool="length"' in html
    assert 'data-can-write="true"' in html


def test_outsider_gets_404_for_the_consult_viewer(client, accepted_consult, outsider):
    client.force_login(outsider)
    assert client.get(f"/consults/{accepted_consult.pk}/").status_code == 404

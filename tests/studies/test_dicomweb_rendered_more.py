"""WADO-RS rendered resources beyond one instance: the Rendered Study, series answered as PS3.18
10.4.1.1.3 says (one part per instance in multipart/related; a single-part image only for one
image), and GIF pictures."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.studies.test_dicomweb_helpers import store_dataset, token_client
from tests.studies.test_dicomweb_transcode import parts

pytestmark = pytest.mark.django_db


@pytest.fixture
def study(physician):
    """A study with two series: two images in the first, one in the second."""
    first = store_dataset(physician)
    store_dataset(
        physician, StudyInstanceUID=first.StudyInstanceUID, SeriesInstanceUID=first.SeriesInstanceUID, InstanceNumber=2
    )
    second = store_dataset(physician, StudyInstanceUID=first.StudyInstanceUID, SeriesNumber=2)
    return first, second


def test_the_rendered_study_has_one_part_per_image(physician, study):
    first, _second = study
    answer = token_client(physician).get(f"/dicomweb/studies/{first.StudyInstanceUID}/rendered")
    assert answer.status_code == 200
    assert answer["Content-Type"].startswith('multipart/related; type="image/jpeg"')
    found = parts(answer)
    assert [content_type for content_type, _data in found] == ["image/jpeg"] * 3
    assert all(Image.open(io.BytesIO(data)).format == "JPEG" for _type, data in found)


def test_outsider_gets_404_for_the_rendered_study_like_an_unknown_one(physician, outsider, study):
    first, _second = study
    assert token_client(physician).get(f"/dicomweb/studies/{first.StudyInstanceUID}/rendered").status_code == 200
    assert token_client(outsider).get(f"/dicomweb/studies/{first.StudyInstanceUID}/rendered").status_code == 404
    assert token_client(physician).get("/dicomweb/studies/1.2.3.4/rendered").status_code == 404


def test_a_series_of_several_images_asked_as_one_jpeg_is_406_saying_how_to_ask(physician, study):
    first, _second = study
    url = f"/dicomweb/studies/{first.StudyInstanceUID}/series/{first.SeriesInstanceUID}/rendered"
    for client_asks in ({"headers": {"Accept": "image/jpeg"}}, {"data": {"accept": "image/jpeg"}}):
        answer = token_client(physician).get(url, **client_asks)
        assert answer.status_code == 406
        assert 'multipart/related; type="image/jpeg"' in answer.json()["detail"]


def test_a_series_of_one_image_asked_as_one_jpeg_is_that_image(physician, study):
    _first, second = study
    url = f"/dicomweb/studies/{second.StudyInstanceUID}/series/{second.SeriesInstanceUID}/rendered"
    answer = token_client(physician).get(url, headers={"Accept": "image/jpeg"})
    assert answer.status_code == 200
    assert answer["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(answer.content)).format == "JPEG"


def test_a_series_asked_as_multipart_png_comes_as_png_parts(physician, study):
    first, _second = study
    url = f"/dicomweb/studies/{first.StudyInstanceUID}/series/{first.SeriesInstanceUID}/rendered"
    answer = token_client(physician).get(url, headers={"Accept": 'multipart/related; type="image/png"'})
    assert answer.status_code == 200
    found = parts(answer)
    assert len(found) == 2
    assert all(Image.open(io.BytesIO(data)).format == "PNG" for _type, data in found)


def test_rendered_images_come_as_gif_on_request(physician, study):
    first, _second = study
    base = f"/dicomweb/studies/{first.StudyInstanceUID}/series/{first.SeriesInstanceUID}"
    client = token_client(physician)
    for path in (
        f"{base}/instances/{first.SOPInstanceUID}/rendered",
        f"{base}/instances/{first.SOPInstanceUID}/frames/1/rendered",
    ):
        answer = client.get(path, headers={"Accept": "image/gif"})
        assert answer.status_code == 200, path
        assert answer["Content-Type"] == "image/gif"
        assert Image.open(io.BytesIO(answer.content)).format == "GIF"
    multipart = client.get(f"{base}/rendered", {"accept": 'multipart/related; type="image/gif"'})
    assert all(Image.open(io.BytesIO(data)).format == "GIF" for _type, data in parts(multipart))


def test_a_rendered_type_nobody_makes_is_406_naming_the_ones_available(physician, study):
    first, _second = study
    answer = token_client(physician).get(
        f"/dicomweb/studies/{first.StudyInstanceUID}/rendered", headers={"Accept": "image/x-jls"}
    )
    assert answer.status_code == 406
    assert "image/gif" in answer.json()["detail"]

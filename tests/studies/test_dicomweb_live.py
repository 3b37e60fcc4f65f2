"""dicomweb-client against a real daphne process: ASGI request streaming, chunked STOW uploads and
streamed multipart answers over real HTTP."""

from __future__ import annotations

import io

import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from PIL import Image
from rest_framework.authtoken.models import Token

from tests.studies.test_dicomweb_helpers import make_dataset

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_dicomweb_client_round_trip_through_daphne(live_server_url, live_user):
    user = live_user("physician", email="dicomweb-live@example.com")
    session = requests.Session()
    session.headers["Authorization"] = f"Token {Token.objects.create(user=user).key}"
    client = DICOMwebClient(url=f"{live_server_url}/dicomweb", session=session)

    small = make_dataset(frames=2)
    # Over dicomweb-client's 1 MB chunk size, so it uploads with chunked transfer encoding.
    large = make_dataset(
        rows=512,
        columns=512,
        frames=3,
        StudyInstanceUID=small.StudyInstanceUID,
        SeriesInstanceUID=small.SeriesInstanceUID,
        InstanceNumber=2,
    )
    answer = client.store_instances([small, large])
    assert sorted(i.ReferencedSOPInstanceUID for i in answer.ReferencedSOPSequence) == sorted(
        [small.SOPInstanceUID, large.SOPInstanceUID]
    )

    studies = client.search_for_studies(search_filters={"PatientName": "doe*", "StudyDate": "20240101-"})
    assert [s["0020000D"]["Value"][0] for s in studies] == [small.StudyInstanceUID]
    # dicomweb-client sends "Host" without the port, and RetrieveURL follows the Host header.
    assert studies[0]["00081190"]["Value"][0].endswith(f"/dicomweb/studies/{small.StudyInstanceUID}")

    series = client.retrieve_series(small.StudyInstanceUID, small.SeriesInstanceUID)
    assert sorted(ds.SOPInstanceUID for ds in series) == sorted([small.SOPInstanceUID, large.SOPInstanceUID])
    back = next(ds for ds in series if ds.SOPInstanceUID == large.SOPInstanceUID)
    assert back.PixelData == large.PixelData

    metadata = client.retrieve_series_metadata(small.StudyInstanceUID, small.SeriesInstanceUID)
    assert all("BulkDataURI" in m["7FE00010"] for m in metadata)

    frames = client.retrieve_instance_frames(small.StudyInstanceUID, small.SeriesInstanceUID, large.SOPInstanceUID, [3])
    size = 512 * 512 * 2
    assert frames == [large.PixelData[2 * size :]]

    jpeg = client.retrieve_instance_rendered(
        small.StudyInstanceUID, small.SeriesInstanceUID, small.SOPInstanceUID, media_types=("image/jpeg",)
    )
    assert Image.open(io.BytesIO(jpeg)).format == "JPEG"

    outsider = requests.get(
        f"{live_server_url}/dicomweb/studies/{small.StudyInstanceUID}/metadata",
        headers={"Authorization": "Token not-a-token"},
        timeout=30,
    )
    assert outsider.status_code == 401

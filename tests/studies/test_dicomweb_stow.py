"""STOW-RS: storing through dicomweb-client, the PS3.18 answer, bad requests and the streaming parser."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest
import requests
from django.test import Client
from pydicom.data import get_testdata_file

from studies import storage
from studies.dicomweb import DicomwebError, read_multipart
from studies.models import Instance, Study
from tests.studies.test_dicomweb_helpers import (
    dicomweb_client_for,
    make_dataset,
    store,
    to_bytes,
    token_client,
    with_fresh_uid,
)

pytestmark = pytest.mark.django_db

BOUNDARY = "b0undary-42"
STOW_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'


def multipart(*parts: bytes, part_type: str = "application/dicom", boundary: str = BOUNDARY) -> bytes:
    body = b""
    for part in parts:
        body += f"--{boundary}\r\nContent-Type: {part_type}\r\n\r\n".encode() + part + b"\r\n"
    return body + f"--{boundary}--\r\n".encode()


def post(user, body: bytes, content_type: str = STOW_TYPE, path: str = "/dicomweb/studies"):
    return token_client(user).generic("POST", path, body, content_type=content_type)


def items(answer, tag: str) -> list[dict]:
    return answer.json().get(tag, {}).get("Value", [])


def value(dataset: dict, tag: str):
    values = dataset.get(tag, {}).get("Value")
    return values[0] if values else None


def test_client_stores_instances_and_gets_them_back(physician, settings):
    client = dicomweb_client_for(physician)
    first = make_dataset()
    second = make_dataset(StudyInstanceUID=first.StudyInstanceUID, SeriesInstanceUID=first.SeriesInstanceUID)
    answer = client.store_instances([first, second])
    stored = [item.ReferencedSOPInstanceUID for item in answer.ReferencedSOPSequence]
    assert sorted(stored) == sorted([first.SOPInstanceUID, second.SOPInstanceUID])
    assert answer.RetrieveURL.endswith(f"/dicomweb/studies/{first.StudyInstanceUID}")
    item = answer.ReferencedSOPSequence[0]
    assert item.ReferencedSOPClassUID == first.SOPClassUID
    assert item.RetrieveURL.endswith(f"/instances/{item.ReferencedSOPInstanceUID}")
    assert "FailedSOPSequence" not in answer
    study = Study.objects.get(study_instance_uid=first.StudyInstanceUID)
    assert study.num_instances == 2
    found = client.search_for_studies(search_filters={"StudyInstanceUID": first.StudyInstanceUID})
    assert len(found) == 1
    back = client.retrieve_instance(first.StudyInstanceUID, first.SeriesInstanceUID, first.SOPInstanceUID)
    assert back.PixelData == first.PixelData


def test_client_stores_into_a_given_study(physician):
    ds = make_dataset()
    answer = dicomweb_client_for(physician).store_instances([ds], study_instance_uid=ds.StudyInstanceUID)
    assert answer.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == ds.SOPInstanceUID


def test_large_store_through_chunked_upload(physician):
    # Over the client's 1 MB chunk size, dicomweb-client switches to chunked transfer encoding.
    ds = make_dataset(rows=512, columns=512, frames=3)
    answer = dicomweb_client_for(physician).store_instances([ds])
    assert answer.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == ds.SOPInstanceUID
    assert Instance.objects.get(sop_instance_uid=ds.SOPInstanceUID).number_of_frames == 3


def test_compressed_corpus_files_round_trip(physician):
    client = dicomweb_client_for(physician)
    names = ("SC_rgb_jpeg_dcmtk.dcm", "JPEG2000.dcm", "MR_small_RLE.dcm", "emri_small_jpeg_2k_lossless.dcm")
    datas = [with_fresh_uid(get_testdata_file(name)) for name in names]
    answer = post(physician, multipart(*datas))
    assert answer.status_code in (200, 202), answer.content
    assert len(items(answer, "00081199")) == len(names)
    for item in items(answer, "00081199"):
        uid = value(item, "00081155")
        instance = Instance.objects.select_related("series__study").get(sop_instance_uid=uid)
        frames = client.retrieve_instance_frames(
            instance.series.study.study_instance_uid, instance.series.series_instance_uid, uid, [1]
        )
        assert len(frames[0]) > 0


def test_resending_is_idempotent(physician):
    data = to_bytes(make_dataset())
    assert post(physician, multipart(data)).status_code == 200
    again = post(physician, multipart(data))
    assert again.status_code == 200
    assert len(items(again, "00081199")) == 1


def test_mixed_good_and_bad_parts_are_202_with_reasons(physician):
    good = make_dataset()
    answer = post(physician, multipart(to_bytes(good), b"this is not DICOM at all", b""))
    assert answer.status_code == 202
    assert answer["Content-Type"] == "application/dicom+json"
    assert [value(i, "00081155") for i in items(answer, "00081199")] == [good.SOPInstanceUID]
    failed = items(answer, "00081198")
    assert [value(f, "00081197") for f in failed] == [0xC000, 0xC000]
    assert "DICM" in value(failed[0], "00000902")
    assert "empty" in value(failed[1], "0040A160")
    assert Instance.objects.filter(sop_instance_uid=good.SOPInstanceUID).exists()


def test_client_reports_partial_failure(physician):
    """A 202 is a success for dicomweb-client: it returns the answer with the failed instance."""
    session = dicomweb_client_for(physician)
    ds = make_dataset()
    broken = make_dataset()
    del broken.SOPInstanceUID
    broken.file_meta.MediaStorageSOPInstanceUID = "1.2.3"
    answer = session.store_instances([ds, broken])
    assert [i.ReferencedSOPInstanceUID for i in answer.ReferencedSOPSequence] == [ds.SOPInstanceUID]
    assert answer.FailedSOPSequence[0].FailureReason == 0xC000


def test_all_parts_refused_is_409(physician):
    answer = post(physician, multipart(b"nope", b"\0" * 200))
    assert answer.status_code == 409
    assert len(items(answer, "00081198")) == 2
    assert "00081199" not in answer.json()


def test_client_sees_409_as_an_error(physician):
    client = dicomweb_client_for(physician)
    ds = make_dataset()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    store(physician, to_bytes(ds))
    changed = make_dataset()
    changed.SOPInstanceUID = changed.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    with pytest.raises(requests.HTTPError) as info:
        client.store_instances([changed])
    assert info.value.response.status_code == 409


def test_conflicting_content_under_a_stored_uid_is_refused_and_the_original_kept(physician):
    original = make_dataset()
    store(physician, to_bytes(original))
    changed = make_dataset(PatientName="Other^Person")
    changed.SOPInstanceUID = changed.file_meta.MediaStorageSOPInstanceUID = original.SOPInstanceUID
    answer = post(physician, multipart(to_bytes(changed)))
    assert answer.status_code == 409
    failed = items(answer, "00081198")[0]
    assert value(failed, "00081197") == 0x0110
    assert value(failed, "00081155") == original.SOPInstanceUID
    assert "different content" in value(failed, "0040A160")
    assert Instance.objects.get(sop_instance_uid=original.SOPInstanceUID).series.study.patient.name == "Doe^Jane"


def test_instance_of_another_study_is_refused_when_storing_into_a_study(physician):
    ds = make_dataset()
    target = "1.2.826.0.1.3680043.99.1"
    answer = post(physician, multipart(to_bytes(ds)), path=f"/dicomweb/studies/{target}")
    assert answer.status_code == 409
    assert value(items(answer, "00081198")[0], "00081197") == 0xA900


def test_storing_into_a_study_the_user_cannot_see_is_404(physician, outsider):
    ds = make_dataset()
    store(physician, to_bytes(ds))
    other = make_dataset(StudyInstanceUID=ds.StudyInstanceUID)
    answer = post(outsider, multipart(to_bytes(other)), path=f"/dicomweb/studies/{ds.StudyInstanceUID}")
    assert answer.status_code == 404
    assert not Instance.objects.filter(sop_instance_uid=other.SOPInstanceUID).exists()


def test_storing_an_instance_into_someone_elses_study_is_refused_and_grants_nothing(physician, outsider):
    ds = make_dataset()
    store(physician, to_bytes(ds))
    intruder = make_dataset(StudyInstanceUID=ds.StudyInstanceUID)
    own = make_dataset()
    answer = post(outsider, multipart(to_bytes(intruder), to_bytes(own)))
    assert answer.status_code == 202
    failed = items(answer, "00081198")
    assert [value(f, "00081155") for f in failed] == [intruder.SOPInstanceUID]
    assert value(failed[0], "00081197") == 0x0110
    assert not Instance.objects.filter(sop_instance_uid=intruder.SOPInstanceUID).exists()
    assert (
        dicomweb_client_for(outsider).search_for_studies(search_filters={"StudyInstanceUID": ds.StudyInstanceUID}) == []
    )


def test_a_part_of_another_media_type_is_refused(physician):
    answer = post(physician, multipart(b'{"00100010": {}}', part_type="application/dicom+json"))
    assert answer.status_code == 409
    assert "application/dicom+json" in value(items(answer, "00081198")[0], "0040A160")


@pytest.mark.parametrize(
    "content_type",
    [
        "application/dicom",
        "application/json",
        f'multipart/related; type="application/dicom+json"; boundary={BOUNDARY}',
        f"multipart/form-data; boundary={BOUNDARY}",
        "",
    ],
)
def test_wrong_media_type_is_415(physician, content_type):
    answer = post(physician, multipart(to_bytes(make_dataset())), content_type=content_type)
    assert answer.status_code == 415
    assert answer.json()["detail"]


@pytest.mark.parametrize(
    ("body", "content_type", "fragment"),
    [
        (multipart(b"x"), 'multipart/related; type="application/dicom"', "boundary"),
        (b"no boundary anywhere in here", STOW_TYPE, "boundary"),
        (f"--{BOUNDARY}--\r\n".encode(), STOW_TYPE, "no parts"),
        (f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\nDICM...".encode(), STOW_TYPE, "closing boundary"),
        (f"--{BOUNDARY}\r\nContent-Type application/dicom\r\n\r\nx\r\n--{BOUNDARY}--".encode(), STOW_TYPE, "colon"),
        (f"--{BOUNDARY}garbage".encode(), STOW_TYPE, "line break"),
    ],
)
def test_malformed_multipart_is_400(physician, body, content_type, fragment):
    answer = post(physician, body, content_type=content_type)
    assert answer.status_code == 400
    assert fragment in answer.json()["detail"]


def test_request_over_the_size_limit_is_413(physician, settings):
    settings.TELECONSULT_MAX_REQUEST_SIZE = 1000
    answer = post(physician, multipart(to_bytes(make_dataset())))
    assert answer.status_code == 413
    assert Instance.objects.count() == 0


def test_body_over_the_limit_without_content_length_is_413(settings, tmp_path):
    body = io.BytesIO(multipart(b"x" * 5000))
    with pytest.raises(DicomwebError) as info:
        read_multipart(body, BOUNDARY, str(tmp_path), max_size=1000)
    assert info.value.status == 413


def test_patients_may_not_store(patient_user):
    answer = post(patient_user, multipart(to_bytes(make_dataset())))
    assert answer.status_code == 403
    assert Instance.objects.count() == 0


def test_unauthenticated_store_is_401():
    answer = Client().generic("POST", "/dicomweb/studies", multipart(b"x"), content_type=STOW_TYPE)
    assert answer.status_code == 401


def test_session_store_needs_the_csrf_token(physician):
    client = Client(enforce_csrf_checks=True)
    client.force_login(physician)
    body = multipart(to_bytes(make_dataset()))
    refused = client.generic("POST", "/dicomweb/studies", body, content_type=STOW_TYPE)
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]
    secret = "abcdefghijklmnopqrstuvwxyzABCDEF"
    client.cookies["csrftoken"] = secret
    accepted = client.generic(
        "POST", "/dicomweb/studies", body, content_type=STOW_TYPE, headers={"X-CSRFToken": secret}
    )
    assert accepted.status_code == 200, accepted.content


def test_token_store_needs_no_csrf_token(physician):
    client = token_client(physician)
    client.handler.enforce_csrf_checks = True
    answer = client.generic("POST", "/dicomweb/studies", multipart(to_bytes(make_dataset())), content_type=STOW_TYPE)
    assert answer.status_code == 200


# --- The streaming parser on its own ---------------------------------------------------------


class Trickle(io.RawIOBase):
    """A stream that hands out at most a few bytes per read, like a slow network."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.pos, self.step = data, 0, step

    def read(self, size: int = -1) -> bytes:
        chunk = self.data[self.pos : self.pos + min(self.step, size if size > 0 else self.step)]
        self.pos += len(chunk)
        return chunk


@pytest.mark.parametrize("step", [1, 3, 7, 64, 100000])
def test_parser_finds_boundaries_split_across_reads(tmp_path, step):
    payloads = [b"first\r\n--b0undary-4 almost", b"", b"\r\n\r\nthird--" * 50]
    body = b"preamble to ignore\r\n" + multipart(*payloads) + b"epilogue"
    parts = read_multipart(Trickle(body, step), BOUNDARY, str(tmp_path), max_size=10**6, chunk_size=step)
    assert [Path(p.path).read_bytes() for p in parts] == payloads
    assert all(p.content_type == "application/dicom" for p in parts)


def test_parser_accepts_transport_padding_and_parts_without_headers(tmp_path):
    body = f"--{BOUNDARY}  \r\n\r\nabc\r\n--{BOUNDARY}--".encode()
    parts = read_multipart(io.BytesIO(body), BOUNDARY, str(tmp_path), max_size=10**6)
    assert Path(parts[0].path).read_bytes() == b"abc"
    assert parts[0].headers == {}


def test_parser_keeps_memory_bounded_for_a_large_part(tmp_path):
    import tracemalloc

    big = b"\x01" * (32 * 1024 * 1024)
    body = multipart(big)
    tracemalloc.start()
    parts = read_multipart(io.BytesIO(body), BOUNDARY, str(tmp_path), max_size=10**9, chunk_size=256 * 1024)
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert parts[0].size == len(big)
    assert peak < 4 * 1024 * 1024


def test_stow_answer_for_coerced_and_refused_results():
    from studies.dicomweb import stow_response
    from studies.ingest import IngestResult

    uids = {
        "study_instance_uid": "1.2.3",
        "series_instance_uid": "1.2.3.4",
        "sop_class_uid": "1.2.840.10008.5.1.4.1.1.2",
    }
    coerced = IngestResult(
        filename="a.dcm", status="stored", sop_instance_uid="1.2.3.4.5", coerced=True, reason="Stored; fixed", **uids
    )
    resent = IngestResult(filename="b.dcm", status="already_stored", sop_instance_uid="1.2.3.4.6", **uids)
    too_large = IngestResult(filename="c.dcm", status="refused", code="too_large", reason="The file is 3 GB")

    def instance_url(study, series, sop):
        return f"/i/{sop}"

    def study_url(study):
        return f"/s/{study}"

    status, dataset = stow_response([coerced, resent], instance_url, study_url)
    assert status == 202
    referenced = dataset["00081199"]["Value"]
    assert referenced[0]["00081196"]["Value"] == [0xB000]
    assert "00081196" not in referenced[1]
    assert dataset["00081190"]["Value"] == ["/s/1.2.3"]
    status, dataset = stow_response([resent], instance_url, study_url)
    assert status == 200
    status, dataset = stow_response([too_large], instance_url, study_url)
    assert status == 409
    assert dataset["00081198"]["Value"][0]["00081197"]["Value"] == [0xA700]


def test_too_many_parts_is_413(tmp_path, monkeypatch):
    from studies.dicomweb import multipart as multipart_body

    monkeypatch.setattr(multipart_body, "MAX_PARTS", 3)
    with pytest.raises(DicomwebError) as info:
        read_multipart(io.BytesIO(multipart(*[b"x"] * 5)), BOUNDARY, str(tmp_path), max_size=10**6)
    assert info.value.status == 413
    assert len(read_multipart(io.BytesIO(multipart(*[b"x"] * 3)), BOUNDARY, str(tmp_path), max_size=10**6)) == 3


def test_deflated_part_is_stored(physician):
    answer = post(physician, multipart(Path(get_testdata_file("image_dfl.dcm")).read_bytes()))

    assert answer.status_code == 200, answer.content
    assert Instance.objects.count() == 1


def test_parts_are_stored_by_moving_them_with_their_preamble_zeroed(physician, settings, tmp_path, monkeypatch):
    settings.MEDIA_ROOT = tmp_path / "media"

    def copied(*args, **kwargs):
        raise AssertionError("a part of the request was copied, not moved")

    monkeypatch.setattr(storage, "stage_with_zeroed_preamble", copied)
    first, second = make_dataset(), make_dataset()
    sent = [to_bytes(first), to_bytes(second)]
    sent[0] = b"MZ" + b"\x90" * 126 + sent[0][128:]  # an executable's header in the preamble
    answer = post(physician, multipart(*sent))
    assert answer.status_code == 200
    for ds, data in zip((first, second), sent, strict=True):
        instance = Instance.objects.get(sop_instance_uid=ds.SOPInstanceUID)
        with instance.file.open("rb") as handle:
            kept = handle.read()
        assert kept == bytes(128) + data[128:]
        assert instance.sha256 == hashlib.sha256(kept).hexdigest()
        assert instance.size == len(data)
    # Nothing of the request is left beside the staging directory.
    assert os.listdir(tmp_path / "media" / ".incoming") == []

"""Annotations API: who reads and writes, validation, versions, idempotent creates, live events."""

from __future__ import annotations

import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from consultations.groups import consult_group
from consultations.models import Annotation
from studies.models import Instance

SOP = "1.2.826.0.1.3680043.10.543.1.1"


@pytest.fixture
def image(accepted):
    series = accepted.study.series.get()
    return Instance.objects.create(
        sop_instance_uid=SOP,
        series=series,
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        rows=256,
        columns=256,
        number_of_frames=2,
        sha256="0" * 64,
        file="dicom/none.dcm",
    )


def length(**changes) -> dict:
    body = {
        "id": str(uuid.uuid4()),
        "sop_instance_uid": SOP,
        "frame": 1,
        "tool": "length",
        "geometry": {"points": [[28, 32], [228, 32]]},
        "values": {"length": 100.0, "unit": "mm"},
        "label": "bar",
    }
    body.update(changes)
    return body


def url(consult, annotation_id=None) -> str:
    base = f"/api/v1/consults/{consult.pk}/annotations/"
    return f"{base}{annotation_id}/" if annotation_id else base


def test_the_specialist_draws_and_everyone_on_the_case_reads_it(auth_client, accepted, image, specialist, physician):
    body = length()
    created = auth_client(specialist).post(url(accepted), body, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["version"] == 1
    assert created.json()["author"]["id"] == specialist.pk

    listed = auth_client(physician).get(url(accepted))
    assert listed.status_code == 200
    [item] = listed.json()
    assert item["id"] == body["id"]
    assert item["geometry"] == {"points": [[28.0, 32.0], [228.0, 32.0]]}
    assert item["values"] == {"length": 100.0, "unit": "mm"}


def test_the_linked_patient_reads_but_does_not_write(auth_client, accepted, image, specialist, patient_user):
    auth_client(specialist).post(url(accepted), length(), format="json")
    assert len(auth_client(patient_user).get(url(accepted)).json()) == 1
    refused = auth_client(patient_user).post(url(accepted), length(), format="json")
    assert refused.status_code == 403
    assert "care team" in refused.json()["detail"]


def test_outsider_gets_404_on_every_annotation_route(auth_client, accepted, image, specialist, outsider):
    body = length()
    auth_client(specialist).post(url(accepted), body, format="json")
    client = auth_client(outsider)
    assert client.get(url(accepted)).status_code == 404
    assert client.post(url(accepted), length(), format="json").status_code == 404
    assert client.get(url(accepted, body["id"])).status_code == 404
    assert client.put(url(accepted, body["id"]), {"label": "x"}, format="json").status_code == 404
    assert client.delete(url(accepted, body["id"])).status_code == 404
    assert Annotation.objects.get().label == "bar"


def test_unauthenticated_gets_401(api_client, accepted, image):
    assert api_client.get(url(accepted)).status_code == 401


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"tool": "lasso"}, "tool"),
        ({"geometry": {"points": [[1, 2]]}}, "geometry"),
        ({"geometry": {"points": [[1, "a"], [2, 3]]}}, "geometry"),
        ({"geometry": {"points": [[1, 2], [3e9, 3]]}}, "geometry"),
        ({"geometry": [[1, 2], [3, 4]]}, "geometry"),
        ({"sop_instance_uid": "9.9.9"}, "sop_instance_uid"),
        ({"sop_instance_uid": ""}, "sop_instance_uid"),
        ({"frame": 3}, "frame"),
        ({"frame": 0}, "frame"),
        ({"label": "x" * 501}, "label"),
        ({"values": {"length": [1, 2]}}, "values"),
        ({"values": "100 mm"}, "values"),
        ({"id": "not-a-uuid"}, "id"),
    ],
)
def test_bad_fields_are_refused_with_the_field_named(auth_client, accepted, image, specialist, changes, field):
    response = auth_client(specialist).post(url(accepted), length(**changes), format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not Annotation.objects.exists()


def test_a_json_list_body_is_refused(auth_client, accepted, image, specialist):
    response = auth_client(specialist).post(url(accepted), [length()], format="json")
    assert response.status_code == 400


def test_sending_a_create_again_returns_the_stored_annotation(auth_client, accepted, image, specialist):
    body = length()
    client = auth_client(specialist)
    assert client.post(url(accepted), body, format="json").status_code == 201
    again = client.post(url(accepted), body, format="json")
    assert again.status_code == 200
    assert Annotation.objects.count() == 1


def test_someone_else_cannot_take_an_annotation_id(auth_client, accepted, image, specialist, physician):
    body = length()
    auth_client(specialist).post(url(accepted), body, format="json")
    response = auth_client(physician).post(url(accepted), body, format="json")
    assert response.status_code == 409


def test_the_author_edits_with_versions_and_a_stale_version_is_a_conflict(auth_client, accepted, image, specialist):
    body = length()
    client = auth_client(specialist)
    client.post(url(accepted), body, format="json")
    moved = {"geometry": {"points": [[30, 40], [230, 40]]}, "values": {"length": 100.0, "unit": "mm"}, "version": 1}
    updated = client.put(url(accepted, body["id"]), moved, format="json")
    assert updated.status_code == 200, updated.content
    assert updated.json()["version"] == 2
    assert updated.json()["geometry"]["points"][0] == [30.0, 40.0]
    stale = client.put(url(accepted, body["id"]), {"label": "late", "version": 1}, format="json")
    assert stale.status_code == 409
    assert "version" in stale.json()
    assert Annotation.objects.get().label == "bar"


def test_only_the_author_changes_or_deletes(auth_client, accepted, image, specialist, physician):
    body = length()
    auth_client(specialist).post(url(accepted), body, format="json")
    other = auth_client(physician)
    assert other.put(url(accepted, body["id"]), {"label": "mine"}, format="json").status_code == 403
    assert other.delete(url(accepted, body["id"])).status_code == 403
    assert auth_client(specialist).delete(url(accepted, body["id"])).status_code == 204
    assert auth_client(specialist).delete(url(accepted, body["id"])).status_code == 404
    assert not Annotation.objects.exists()


def test_changes_are_announced_in_the_consult_room(
    auth_client, accepted, image, specialist, django_capture_on_commit_callbacks
):
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(consult_group(accepted.pk), channel)
    body = length()
    client = auth_client(specialist)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url(accepted), body, format="json")
        client.put(url(accepted, body["id"]), {"label": "renamed"}, format="json")
        client.delete(url(accepted, body["id"]))
    events = [async_to_sync(layer.receive)(channel) for _ in range(3)]
    assert [e["kind"] for e in events] == ["annotation.created", "annotation.updated", "annotation.deleted"]
    assert events[1]["annotation"]["label"] == "renamed"
    assert {e["annotation"]["id"] for e in events} == {body["id"]}

"""Two practices, one MRN: every route answers every kind of user as the practice rule says.

Practice A and practice B each keep a patient with the MRN "MRN-4711", each with a stored CT (a
real DICOM instance, ingested by a member of the practice, with its thumbnail rendered). On A's
study there is a consult accepted by a specialist with a signed report, and a second consult only
offered (pool) to another specialist. Each route on A's objects is asked by each actor:

- those allowed get the route's answer: its success (200, 201 for what a POST makes, the
  patient portal's redirect of a clinician to the study page), or for a write the refusal that
  only comes after the permission check (400 for a missing file, 409 for nothing to export);
  a few who may see the record but not use the route get its documented 403 (commented where
  they are listed);
- every other signed-in actor gets 404, never 403 (which would confirm the record exists) and
  never the data;
- anonymous callers are sent to the login page (pages) or get 401 (API, DICOMweb).

The searches (QIDO-RS at three levels, the API lists, the study list) show A's study only to those
allowed, and the consult room's WebSocket closes with 4403 for everyone outside the care team.

The data is made once for the module, inside a transaction rolled back when the module ends; each
test runs in a savepoint of it (pytest-django's ``db``), so whatever a request writes (access
events, a link request) is undone after each case.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import Client, TestCase, override_settings
from django.urls import reverse
from PIL import Image
from rest_framework.authtoken.models import Token

from consultations import actions, reports, room
from consultations.models import ConsultRequest, State
from studies import sharing
from studies.ingest import ingest_file
from studies.models import AccessEvent, Instance, Patient, PatientInvitation, Series, Study
from studies.tasks import render_instance
from tests.factories import PASSWORD, ConsultFactory, SpecialistFactory, UserFactory
from tests.studies import dicom_factory as f
from tests.studies.test_dicomweb_helpers import token_client

MRN = "MRN-4711"
PATIENT_A = "Abbott^Alma"  # A's patient, under a name no page uses as an example
SURNAME_A = b"Abbott"
STUDY_UID_TAG = "0020000D"
SERIES_UID_TAG = "0020000E"
SOP_UID_TAG = "00080018"
FORBIDDEN = 4403

# -- actors --------------------------------------------------------------------------------------

OWNER = "owner_a"  # practice A's admin, who uploaded A's study and requested both consults
COLLEAGUE = "colleague_a"  # a clinician member of practice A, on no consult
PHYSICIAN_B = "physician_b"  # practice B's physician, who keeps their own MRN-4711
PATIENT_B = "patient_b"  # the patient account linked to B's record of MRN-4711
PENDING = "pending"  # a self-registered physician no practice has admitted
OFFERED = "offered_specialist"  # holds only the open (pool) offer of A's second consult
ASSIGNED = "assigned_specialist"  # accepted A's first consult and signed its report
ANONYMOUS = "anonymous"

ACTORS = (OWNER, COLLEAGUE, PHYSICIAN_B, PATIENT_B, PENDING, OFFERED, ASSIGNED, ANONYMOUS)

LOGIN = "login"  # the expected answer of a page to an anonymous caller

# Known application bugs: (route name, actor) -> reason. Those cases are strict xfails.
KNOWN_BUGS: dict[tuple[str, str], str] = {}


# -- the data ------------------------------------------------------------------------------------


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (8, 8), 128).save(buffer, format="PNG")
    return buffer.getvalue()


def store_ct(user, *, name: str) -> tuple[Study, Instance]:
    """A member of a practice ingests a CT of MRN-4711; its thumbnail is rendered."""
    result = ingest_file(io.BytesIO(f.make_ct(PatientID=MRN, PatientName=name)), filename="ct.dcm", user=user)
    assert result.status == "stored", result
    instance = Instance.objects.get(pk=result.instance_id)
    if instance.status == Instance.Status.PENDING:
        render_instance(instance_pk=instance.pk)
        instance.refresh_from_db()
    assert instance.status == Instance.Status.READY and instance.thumbnail, instance.status
    return Study.objects.select_related("patient").get(study_instance_uid=result.study_instance_uid), instance


def build_world() -> SimpleNamespace:
    owner = UserFactory(role="physician", email="owner-a@example.com", name="Dr Owner A")
    practice_a = owner.default_practice
    colleague = UserFactory(
        role="physician", email="colleague-a@example.com", name="Dr Colleague A", practice=practice_a
    )
    physician_b = UserFactory(role="physician", email="physician-b@example.com", name="Dr B")
    patient_b = UserFactory(role="patient", email="patient-b@example.com", name="Pat B")
    pending = UserFactory(role="physician", email="pending@example.com", name="Dr Pending", practice=False)
    offered = SpecialistFactory(email="offered@example.com", name="Dr Offered")  # neuroradiology
    assigned = SpecialistFactory(
        email="assigned@example.com", name="Dr Assigned", profile__specialties=["general_radiology"]
    )
    assert practice_a != physician_b.default_practice
    assert colleague.practice_ids() == [practice_a.pk] and pending.awaiting_practice

    study_a, instance_a = store_ct(owner, name=PATIENT_A)
    study_b, _ = store_ct(physician_b, name="Intruder^Ivan")
    assert study_a.practice == practice_a and study_b.practice == physician_b.default_practice
    assert study_a.patient.patient_id == study_b.patient.patient_id == MRN
    assert study_a.patient_id != study_b.patient_id
    Patient.objects.filter(pk=study_b.patient_id).update(account=patient_b)

    # The accepted consult, addressed to the assigned specialist, with a signed report.
    accepted = ConsultFactory(requester=owner, study=study_a, target_specialist=assigned, specialty="general_radiology")
    actions.submit_consult(accepted, by=owner)
    actions.accept_consult(accepted, by=assigned)
    reports.save_draft(
        accepted,
        by=assigned,
        findings="Small old lacunar infarct.",
        impression="No acute findings.",
        patient_summary="Nothing urgent was found on your scan.",
    )
    reports.sign_report(accepted, by=assigned, password=PASSWORD)
    accepted.refresh_from_db()
    assert accepted.state == State.REPORTED and accepted.assignee == assigned
    accepted_attachment = actions.add_attachment(
        accepted, by=owner, upload=SimpleUploadedFile("referral-a.png", png_bytes(), "image/png")
    )
    room.save_message(accepted, author=owner, text="Thanks for taking this one.")

    # The pool consult: neuroradiology, which only the offered specialist practises.
    offered_consult = ConsultFactory(requester=owner, study=study_a, specialty="neuroradiology")
    actions.submit_consult(offered_consult, by=owner)
    offered_consult.refresh_from_db()
    assert list(offered_consult.offers.values_list("specialist", flat=True)) == [offered.pk]
    assert offered_consult.state == State.SUBMITTED
    offered_attachment = actions.add_attachment(
        offered_consult, by=owner, upload=SimpleUploadedFile("referral-b.png", png_bytes(), "image/png")
    )

    share = sharing.create_share(study=study_a, by=owner).link
    # Each side has looked at its own study once.
    for user, study in ((owner, study_a), (physician_b, study_b), (patient_b, study_b)):
        AccessEvent.objects.create(
            user=user,
            actor=user.email,
            action=AccessEvent.Action.STUDY_VIEW,
            study=study,
            study_uid=study.study_instance_uid,
        )

    users = {
        OWNER: owner,
        COLLEAGUE: colleague,
        PHYSICIAN_B: physician_b,
        PATIENT_B: patient_b,
        PENDING: pending,
        OFFERED: offered,
        ASSIGNED: assigned,
    }
    for user in users.values():
        Token.objects.get_or_create(user=user)
    return SimpleNamespace(
        users=users,
        practice_a=practice_a,
        study_a=study_a,
        study_b=study_b,
        uid=study_a.study_instance_uid,
        series_uid=instance_a.series.series_instance_uid,
        sop_uid=instance_a.sop_instance_uid,
        patient_a=study_a.patient,
        accepted=accepted,
        accepted_attachment=accepted_attachment,
        offered=offered_consult,
        offered_attachment=offered_attachment,
        share=share,
    )


def name_what_searches_find(world: SimpleNamespace) -> None:
    """What each search result stands for ("A", "B", a consult), to compare names, not UIDs. The
    signed report's PDF is filed in A's study as a series of its own, so A has two series."""
    sides = {world.study_a.pk: "A", world.study_b.pk: "B"}
    world.study_names = {s.study_instance_uid: sides[s.pk] for s in (world.study_a, world.study_b)}
    world.series_names = {
        uid: sides[study]
        for uid, study in Series.objects.filter(study__in=sides).values_list("series_instance_uid", "study")
    }
    world.sop_names = {
        uid: sides[study]
        for uid, study in Instance.objects.filter(series__study__in=sides).values_list(
            "sop_instance_uid", "series__study"
        )
    }
    world.a_instances = sum(1 for name in world.sop_names.values() if name == "A")
    world.patient_names = {world.study_a.patient_id: "A", world.study_b.patient_id: "B"}
    world.consult_names = {world.accepted.pk: "accepted", world.offered.pk: "offered"}


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, tmp_path_factory):
    """The two practices, made once for the module (files in a temporary media directory) and
    rolled back at its end."""
    media = override_settings(MEDIA_ROOT=str(tmp_path_factory.mktemp("practice-matrix-media")))
    media.enable()
    try:
        with django_db_blocker.unblock():
            outer = transaction.atomic()
            outer.__enter__()
            try:
                # Rendering, notifications and the report PDF are queued on commit: run them now.
                with TestCase.captureOnCommitCallbacks(execute=True):
                    built = build_world()
                name_what_searches_find(built)
                yield built
            finally:
                transaction.set_rollback(True)
                outer.__exit__(None, None, None)
    finally:
        media.disable()


@pytest.fixture(autouse=True)
def fresh_state(world, db):
    """Each case in a savepoint of the module's data; no access-event summaries or room presence
    carried over from the case before."""
    cache.clear()
    room._presence = None
    yield
    room._presence = None


# -- asking a route ------------------------------------------------------------------------------

JSON = "application/dicom+json"
DICOM = "multipart/related; type=application/dicom"
OCTETS = "multipart/related; type=application/octet-stream"
PNG = "image/png"


@dataclass(frozen=True)
class Route:
    """One route on A's objects. ``allowed``: actor -> the answer they get (everyone else signed
    in: 404); ``check`` looks at what an allowed actor got. ``kind``: "page" (a signed-in
    browser), "api" or "dicomweb" (a token)."""

    name: str
    kind: str
    path: Callable[[SimpleNamespace], str]
    allowed: Mapping[str, int]
    method: str = "get"
    accept: str | None = None
    body_of: Callable[[SimpleNamespace], Mapping] | None = None  # what a POST sends
    json_body: bool = False
    raw_body: Callable[[SimpleNamespace], bytes] | None = None  # sent as is, with ``content_type``
    content_type: str = ""
    location: Callable[[SimpleNamespace], str] | None = None  # where an allowed 302 leads
    check: Callable[[SimpleNamespace, str, object], None] | None = None

    def expected(self, actor: str) -> int | str:
        if actor == ANONYMOUS:
            return LOGIN if self.kind == "page" else 401
        return self.allowed.get(actor, 404)


def client_for(world, actor: str, kind: str) -> Client:
    if actor == ANONYMOUS:
        return Client()
    user = world.users[actor]
    if kind == "page":
        client = Client()
        client.force_login(user)
        return client
    return token_client(user)


def content_of(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def ask(world, route: Route, actor: str):
    client = client_for(world, actor, route.kind)
    headers = {"Accept": route.accept} if route.accept else {}
    path = route.path(world)
    body = route.body_of(world) if route.body_of else {}
    if route.method == "get":
        response = client.get(path, headers=headers)
    elif route.raw_body is not None:
        response = client.generic("POST", path, route.raw_body(world), content_type=route.content_type, headers=headers)
    elif route.json_body:
        response = client.post(path, json.dumps(body), content_type="application/json", headers=headers)
    else:
        response = client.post(path, body, headers=headers)
    response.body = content_of(response)  # read (and close) streamed files whatever the answer
    return response


def assert_answer(world, route: Route, actor: str, response) -> None:
    expected = route.expected(actor)
    where = f"{route.method.upper()} {route.path(world)} as {actor}"
    if expected == LOGIN:
        assert response.status_code == 302, (where, response.status_code)
        assert response["Location"].startswith(reverse("account_login")), (where, response["Location"])
        return
    assert response.status_code == expected, (where, response.status_code, response.body[:300])
    if expected == 302 and route.location is not None:
        # The page itself; a fragment only says where on it to open.
        assert response["Location"].split("#")[0] == route.location(world), where
    if response.status_code == 404:
        # Nothing of A's record in the refusal (a 404 page may repeat the path, not the patient).
        assert SURNAME_A not in response.body, where
    if route.check is not None and actor in route.allowed:
        route.check(world, actor, response)


def params_for(routes: list[Route], actors=ACTORS) -> list:
    cases = []
    for route in routes:
        for actor in actors:
            expected = route.expected(actor)
            marks = ()
            reason = KNOWN_BUGS.get((route.name, actor))
            if reason:
                marks = (pytest.mark.xfail(strict=True, reason=reason),)
            cases.append(pytest.param(route, actor, id=f"{route.name}-{actor}-{expected}", marks=marks))
    return cases


# -- checks of what allowed actors get -------------------------------------------------------------


def names_the_study(world, actor, response) -> None:
    assert response.json()["study_instance_uid"] == world.uid


def names_the_shared_study(world, actor, response) -> None:
    body = response.json()
    assert body["study_uid"] == world.uid and body["url"].startswith("/s/")


def names_the_patient(world, actor, response) -> None:
    body = response.json()
    assert body["id"] == world.patient_a.pk and body["patient_id"] == MRN
    assert [s["study_instance_uid"] for s in body["studies"]] == [world.uid]


def stored_in_the_study_only_when_allowed(world, actor, response) -> None:
    now = Instance.objects.filter(series__study=world.study_a).count()
    assert now == world.a_instances + (1 if response.status_code == 200 else 0), (actor, now)


def link_requested_only_by_members(world, actor, response) -> None:
    requested = PatientInvitation.objects.filter(patient=world.patient_a).exists()
    assert requested == (actor in (OWNER, COLLEAGUE)), (actor, requested)


def events_of_the_study_only(world, actor, response) -> None:
    assert {event["study_uid"] for event in response.json()["results"]} <= {world.uid}


def is_image(world, actor, response) -> None:
    """A picture in the format its Content-Type names (thumbnails are JPEG or PNG)."""
    picture = Image.open(io.BytesIO(response.body))
    assert response["Content-Type"].startswith(Image.MIME[picture.format]), (picture.format, response["Content-Type"])


def is_dicom_file(world, actor, response) -> None:
    assert response.body[128:132] == b"DICM"


def is_zip(world, actor, response) -> None:
    assert response.body.startswith(b"PK"), response.body[:16]


def is_pdf(world, actor, response) -> None:
    assert response.body.startswith(b"%PDF"), response.body[:16]


def is_the_dicom_json_of_the_study(world, actor, response) -> None:
    items = json.loads(response.body)
    assert items and all(item[STUDY_UID_TAG]["Value"] == [world.uid] for item in items)


def carries_the_instance(world, actor, response) -> None:
    assert response["Content-Type"].startswith("multipart/related")
    assert b"DICM" in response.body and world.sop_uid.encode() in response.body


def full_consult(world, actor, response) -> None:
    body = response.json()
    assert "offer_only" not in body and body["study"]["patient_name"] == "Abbott Alma"


def offer_or_full_consult(world, actor, response) -> None:
    body = response.json()
    if actor == OFFERED:
        assert body["offer_only"] is True
        assert SURNAME_A not in response.body and world.uid.encode() not in response.body
    else:
        full_consult(world, actor, response)


def offer_or_detail_page(world, actor, response) -> None:
    templates = [t.name for t in response.templates]
    if actor == OFFERED:
        assert "consultations/offer.html" in templates
        assert SURNAME_A not in response.body and world.uid.encode() not in response.body
    else:
        assert "consultations/detail.html" in templates


def taken_only_by_the_offered_specialist(world, actor, response) -> None:
    now = ConsultRequest.objects.get(pk=world.offered.pk)  # the shared object stays as it was made
    if actor == OFFERED:
        assert now.state == State.ACCEPTED and now.assignee_id == world.users[OFFERED].pk
        assert response["Location"].endswith("#viewer")  # the consult page opens on its viewer
    else:
        assert now.state == State.SUBMITTED and now.assignee_id is None


def signed_report(world, actor, response) -> None:
    assert response.json()["impression"] == "No acute findings."


# -- the routes ------------------------------------------------------------------------------------

READERS = {OWNER: 200, COLLEAGUE: 200, ASSIGNED: 200}  # who may see A's study and its record
CARE_TEAM = {OWNER: 200, ASSIGNED: 200}  # who may see the accepted consult


def study_page(name: str) -> Callable[[SimpleNamespace], str]:
    return lambda w: reverse(name, args=[w.uid])


def dicomweb(suffix: str = "") -> Callable[[SimpleNamespace], str]:
    return lambda w: f"/dicomweb/studies/{w.uid}{suffix.format(series=w.series_uid, sop=w.sop_uid)}"


INSTANCE = "/series/{series}/instances/{sop}"
BOUNDARY = "matrix-b0undary"
STOW_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'


def stow_body_for_the_study(world) -> bytes:
    """A STOW-RS body of one more CT of A's study (a new series)."""
    data = f.make_ct(PatientID=MRN, PatientName=PATIENT_A, StudyInstanceUID=world.uid)
    head = f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
    return head + data + f"\r\n--{BOUNDARY}--\r\n".encode()


STUDY_ROUTES = [
    # Pages of the study and its patient record.
    Route("study_page", "page", study_page("studies:detail"), READERS),
    Route("study_status_json", "page", study_page("studies:status"), READERS),
    Route("viewer_page", "page", study_page("studies:viewer"), READERS),
    Route("study_access_page", "page", study_page("studies:access"), READERS),
    Route("study_zip_download", "page", study_page("studies:download"), READERS, check=is_zip),
    Route("deidentified_zip", "page", study_page("studies:deidentified"), READERS, check=is_zip),
    Route("add_photo_page", "page", study_page("studies:add-photo"), READERS),
    # Only physicians request consults: the specialist who may see the study is told so (403).
    Route("new_consult_page", "page", study_page("consultations:new"), {OWNER: 200, COLLEAGUE: 200, ASSIGNED: 403}),
    Route(
        "instance_file",
        "page",
        lambda w: reverse("studies:file", args=[w.uid, w.sop_uid]),
        READERS,
        check=is_dicom_file,
    ),
    Route(
        "instance_thumbnail",
        "page",
        lambda w: reverse("studies:thumbnail", args=[w.uid, w.sop_uid]),
        READERS,
        check=is_image,
    ),
    Route("patient_page", "page", lambda w: reverse("studies:patient", args=[w.patient_a.pk]), READERS),
    # The patient portal sends clinicians who may see the study to its clinical page.
    Route(
        "portal_study_page",
        "page",
        lambda w: reverse("portal:study", args=[w.uid]),
        {OWNER: 302, COLLEAGUE: 302, ASSIGNED: 302},
        location=study_page("studies:detail"),
    ),
    # Practice A's own pages: its admin only.
    Route("practice_page", "page", lambda w: reverse("accounts:practice", args=[w.practice_a.pk]), {OWNER: 200}),
    # The access-history search and its CSV export are for site administrators only.
    Route(
        "access_history_csv",
        "page",
        lambda w: f"{reverse('studies:access-history')}?format=csv&study_uid={w.uid}",
        {},
    ),
    # The API.
    Route("api_study", "api", lambda w: f"/api/v1/studies/{w.uid}/", READERS, check=names_the_study),
    Route("api_patient", "api", lambda w: f"/api/v1/patients/{w.patient_a.pk}/", READERS, check=names_the_patient),
    # Members of the record's practice ask the patient to link; the assigned specialist sees the
    # record (through the consult) but is not a member: 403, as docs/portal-and-sharing.md says.
    Route(
        "api_patient_invite",
        "api",
        lambda w: f"/api/v1/patients/{w.patient_a.pk}/invite/",
        {OWNER: 201, COLLEAGUE: 201, ASSIGNED: 403},
        method="post",
        body_of=lambda w: {"email": "alma.abbott@example.com"},
        json_body=True,
    ),
    # The patient page's "Ask to link": back to the patient page; only a member's request is made.
    Route(
        "invite_patient_page",
        "page",
        lambda w: reverse("studies:invite-patient", args=[w.patient_a.pk]),
        {OWNER: 302, COLLEAGUE: 302, ASSIGNED: 302},
        method="post",
        body_of=lambda w: {"email": "alma.abbott@example.com"},
        location=lambda w: reverse("studies:patient", args=[w.patient_a.pk]),
        check=link_requested_only_by_members,
    ),
    Route(
        "api_access_events",
        "api",
        lambda w: f"/api/v1/access-events/?study_uid={w.uid}",
        READERS,
        check=events_of_the_study_only,
    ),
    Route("api_deidentified", "api", lambda w: f"/api/v1/studies/{w.uid}/deidentified/", READERS, check=is_zip),
    # The permission check comes before the (missing) file is looked at: 400 "no_file" for readers.
    Route(
        "api_add_photo_without_a_file",
        "api",
        lambda w: f"/api/v1/studies/{w.uid}/photos/",
        {OWNER: 400, COLLEAGUE: 400, ASSIGNED: 400},
        method="post",
    ),
    Route("api_share_link", "api", lambda w: f"/api/v1/shares/{w.share.pk}/", {OWNER: 200}),
    # Writes that make something of A's study (rolled back after each case).
    Route(
        "api_make_share_link",
        "api",
        lambda w: "/api/v1/shares/",
        {OWNER: 201, COLLEAGUE: 201, ASSIGNED: 201},
        method="post",
        body_of=lambda w: {"study_uid": w.uid},
        json_body=True,
        check=names_the_shared_study,
    ),
    Route(
        "make_share_link_page",
        "page",
        study_page("studies:create-link"),
        {OWNER: 201, COLLEAGUE: 201, ASSIGNED: 201},
        method="post",
        body_of=lambda w: {"expires_in_days": 7},
    ),
    # DICOMweb.
    Route(
        "dicomweb_stow_into_the_study",
        "dicomweb",
        dicomweb(),
        # Anyone who may see the study adds to it. Patients store nothing: their 403 comes before
        # any study is looked at, the same for every UID, so it tells nothing of practice A.
        {OWNER: 200, COLLEAGUE: 200, ASSIGNED: 200, PATIENT_B: 403},
        method="post",
        check=stored_in_the_study_only_when_allowed,
        raw_body=stow_body_for_the_study,
        content_type=STOW_TYPE,
    ),
    Route("dicomweb_study", "dicomweb", dicomweb(), READERS, accept=DICOM, check=carries_the_instance),
    Route(
        "dicomweb_study_metadata",
        "dicomweb",
        dicomweb("/metadata"),
        READERS,
        accept=JSON,
        check=is_the_dicom_json_of_the_study,
    ),
    Route("dicomweb_study_thumbnail", "dicomweb", dicomweb("/thumbnail"), READERS, accept=PNG, check=is_image),
    Route(
        "dicomweb_study_series_search",
        "dicomweb",
        dicomweb("/series"),
        READERS,
        accept=JSON,
        check=is_the_dicom_json_of_the_study,
    ),
    Route(
        "dicomweb_study_instances_search",
        "dicomweb",
        dicomweb("/instances"),
        READERS,
        accept=JSON,
        check=is_the_dicom_json_of_the_study,
    ),
    Route(
        "dicomweb_series", "dicomweb", dicomweb("/series/{series}"), READERS, accept=DICOM, check=carries_the_instance
    ),
    Route(
        "dicomweb_series_metadata",
        "dicomweb",
        dicomweb("/series/{series}/metadata"),
        READERS,
        accept=JSON,
        check=is_the_dicom_json_of_the_study,
    ),
    Route("dicomweb_instance", "dicomweb", dicomweb(INSTANCE), READERS, accept=DICOM, check=carries_the_instance),
    Route(
        "dicomweb_instance_metadata",
        "dicomweb",
        dicomweb(INSTANCE + "/metadata"),
        READERS,
        accept=JSON,
        check=is_the_dicom_json_of_the_study,
    ),
    Route("dicomweb_frame_1", "dicomweb", dicomweb(INSTANCE + "/frames/1"), READERS, accept=OCTETS),
    Route(
        "dicomweb_frame_1_rendered",
        "dicomweb",
        dicomweb(INSTANCE + "/frames/1/rendered"),
        READERS,
        accept=PNG,
        check=is_image,
    ),
    Route("dicomweb_rendered", "dicomweb", dicomweb(INSTANCE + "/rendered"), READERS, accept=PNG, check=is_image),
    Route("dicomweb_thumbnail", "dicomweb", dicomweb(INSTANCE + "/thumbnail"), READERS, accept=PNG, check=is_image),
]


def consult(kind: str, suffix: str = "", *, which: str = "accepted") -> Callable[[SimpleNamespace], str]:
    prefix = "/api/v1/consults" if kind == "api" else "/consults"

    def path(w) -> str:
        target = getattr(w, which)
        attachment = getattr(w, f"{which}_attachment")
        return f"{prefix}/{target.pk}/{suffix.format(attachment=attachment.pk)}"

    return path


ACCEPTED_CONSULT_ROUTES = [
    Route("consult_page", "page", consult("page"), CARE_TEAM),
    # Only the specialist who accepted the consult writes its report; the requester is told so.
    Route("report_editor_page", "page", consult("page", "report/"), {OWNER: 403, ASSIGNED: 200}),
    Route("report_pdf_page", "page", lambda w: f"/consults/{w.accepted.pk}/report.pdf", CARE_TEAM, check=is_pdf),
    Route(
        "portal_report_pdf", "page", lambda w: f"/portal/consults/{w.accepted.pk}/report.pdf", CARE_TEAM, check=is_pdf
    ),
    Route("attachment_page", "page", consult("page", "attachments/{attachment}/"), CARE_TEAM, check=is_image),
    Route("api_consult", "api", consult("api"), CARE_TEAM, check=full_consult),
    Route("api_consult_events", "api", consult("api", "events/"), CARE_TEAM),
    Route("api_report", "api", consult("api", "report/"), CARE_TEAM, check=signed_report),
    Route("api_report_versions", "api", consult("api", "report/versions/"), CARE_TEAM),
    Route("api_report_pdf", "api", consult("api", "report/pdf/"), CARE_TEAM, check=is_pdf),
    Route("api_attachment", "api", consult("api", "attachments/{attachment}/"), CARE_TEAM, check=is_image),
    Route("api_messages", "api", consult("api", "messages/"), CARE_TEAM),
    Route("api_annotations", "api", consult("api", "annotations/"), CARE_TEAM),
    Route(
        "api_post_message",
        "api",
        consult("api", "messages/"),
        {OWNER: 201, ASSIGNED: 201},
        method="post",
        body_of=lambda w: {"text": "Any news?"},
        json_body=True,
    ),
    # The care team may export measurements; there are none yet: 409 nothing_to_export.
    Route("api_export_sr", "api", consult("api", "export-sr/"), {OWNER: 409, ASSIGNED: 409}, method="post"),
]

# The offered consult: the requester sees it whole; the offered specialist sees only the offer
# (its page and its API answer, ``offer_only``), and nothing else of it.
OFFER_VIEW = {OWNER: 200, OFFERED: 200}
REQUESTER = {OWNER: 200}
OFFERED_CONSULT_ROUTES = [
    Route("offered_consult_page", "page", consult("page", which="offered"), OFFER_VIEW, check=offer_or_detail_page),
    Route("offered_api_consult", "api", consult("api", which="offered"), OFFER_VIEW, check=offer_or_full_consult),
    Route("offered_api_consult_events", "api", consult("api", "events/", which="offered"), REQUESTER),
    Route("offered_attachment_page", "page", consult("page", "attachments/{attachment}/", which="offered"), REQUESTER),
    Route("offered_api_attachment", "api", consult("api", "attachments/{attachment}/", which="offered"), REQUESTER),
    Route("offered_api_messages", "api", consult("api", "messages/", which="offered"), REQUESTER),
    Route("offered_api_annotations", "api", consult("api", "annotations/", which="offered"), REQUESTER),
    Route("offered_api_report_versions", "api", consult("api", "report/versions/", which="offered"), REQUESTER),
    Route(
        "offered_api_post_message",
        "api",
        consult("api", "messages/", which="offered"),
        {OWNER: 201},
        method="post",
        body_of=lambda w: {"text": "Any news?"},
        json_body=True,
    ),
    # Accepting is the offered specialist's (then back to the consult); the requester is told they
    # may not, on the same page.
    Route(
        "offered_accept",
        "page",
        consult("page", "do/accept/", which="offered"),
        {OWNER: 302, OFFERED: 302},
        method="post",
        location=consult("page", which="offered"),
        check=taken_only_by_the_offered_specialist,
    ),
]


@pytest.mark.parametrize(("route", "actor"), params_for(STUDY_ROUTES))
def test_study_routes_of_practice_a_answer_its_members_and_the_assigned_specialist_and_404_everyone_else(
    world, route, actor
):
    assert_answer(world, route, actor, ask(world, route, actor))


@pytest.mark.parametrize(("route", "actor"), params_for(ACCEPTED_CONSULT_ROUTES))
def test_accepted_consult_routes_answer_only_its_care_team_and_404_everyone_else(world, route, actor):
    assert_answer(world, route, actor, ask(world, route, actor))


@pytest.mark.parametrize(("route", "actor"), params_for(OFFERED_CONSULT_ROUTES))
def test_offered_consult_shows_the_offer_only_to_the_offered_specialist_and_404_everyone_else(world, route, actor):
    assert_answer(world, route, actor, ask(world, route, actor))


CREATE_ANSWERS = {OWNER: 201, COLLEAGUE: 201, ASSIGNED: 403}  # only physicians request consults


@pytest.mark.parametrize("actor", ACTORS, ids=lambda a: f"{a}-{CREATE_ANSWERS.get(a, 401 if a == ANONYMOUS else 400)}")
def test_consult_requested_on_a_study_of_practice_a_is_answered_as_if_the_uid_were_unknown_for_outsiders(world, actor):
    """``POST /api/v1/consults/`` validates the study UID: a study the caller may not see is refused
    with the very answer an unknown UID gets, so the answer tells nothing of practice A."""
    client = client_for(world, actor, "api")

    def request(uid: str):
        body = {"study_uid": uid, "question": "Any bleed?", "specialty": "neuroradiology", "jurisdiction": "US-CA"}
        return client.post("/api/v1/consults/", json.dumps(body), content_type="application/json")

    response = request(world.uid)
    if actor == ANONYMOUS:
        assert response.status_code == 401
    elif actor in CREATE_ANSWERS:
        assert response.status_code == CREATE_ANSWERS[actor], response.content[:300]
    else:
        assert response.status_code == 400, response.content[:300]
        assert response.json() == request("1.2.3.4.5.404").json()
        assert not ConsultRequest.objects.filter(requester=world.users[actor]).exists()


# -- searches --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Search:
    """A search or list; ``found`` turns its answer into the names of what it lists."""

    name: str
    kind: str
    path: str  # "{uid}", "{sop}": A's study and instance
    found: Callable[[SimpleNamespace, object], set[str]]
    expected: Mapping[str, set[str]]
    accept: str | None = None


def qido_names(tag: str, names: str) -> Callable[[SimpleNamespace, object], set[str]]:
    def found(world, response) -> set[str]:
        return {getattr(world, names)[item[tag]["Value"][0]] for item in json.loads(response.body)}

    return found


def api_names(key: str, names: str) -> Callable[[SimpleNamespace, object], set[str]]:
    def found(world, response) -> set[str]:
        return {getattr(world, names)[item[key]] for item in response.json()["results"]}

    return found


def study_list_names(world, response) -> set[str]:
    return {world.study_names[study.study_instance_uid] for study in response.context["page"].object_list}


# Who sees which MRN-4711 study (and record): A's side, B's side, or neither.
SEES_STUDY = {
    OWNER: {"A"},
    COLLEAGUE: {"A"},
    ASSIGNED: {"A"},
    PHYSICIAN_B: {"B"},
    PATIENT_B: {"B"},
    PENDING: set(),
    OFFERED: set(),
}
SEES_CONSULT = {
    OWNER: {"accepted", "offered"},
    ASSIGNED: {"accepted"},
    OFFERED: {"offered"},
    COLLEAGUE: set(),
    PHYSICIAN_B: set(),
    PATIENT_B: set(),
    PENDING: set(),
}
# Looking A's study up by its UIDs finds it only for those who may see it.
SEES_A = {actor: ({"A"} if actor in (OWNER, COLLEAGUE, ASSIGNED) else set()) for actor in SEES_STUDY}
# The access history: the uploader and the practice's admins read a study's; a patient their own.
READS_EVENTS_OF = {
    OWNER: {"A"},
    PHYSICIAN_B: {"B"},
    PATIENT_B: {"B"},
    COLLEAGUE: set(),
    ASSIGNED: set(),
    PENDING: set(),
    OFFERED: set(),
}
MRN_QUERY = f"PatientID={MRN}"

SEARCHES = [
    Search(
        "qido_studies",
        "dicomweb",
        f"/dicomweb/studies?{MRN_QUERY}",
        qido_names(STUDY_UID_TAG, "study_names"),
        SEES_STUDY,
        accept=JSON,
    ),
    Search(
        "qido_series",
        "dicomweb",
        f"/dicomweb/series?{MRN_QUERY}",
        qido_names(SERIES_UID_TAG, "series_names"),
        SEES_STUDY,
        accept=JSON,
    ),
    Search(
        "qido_instances",
        "dicomweb",
        f"/dicomweb/instances?{MRN_QUERY}",
        qido_names(SOP_UID_TAG, "sop_names"),
        SEES_STUDY,
        accept=JSON,
    ),
    Search(
        "qido_studies_by_a_uid",
        "dicomweb",
        "/dicomweb/studies?StudyInstanceUID={uid}",
        qido_names(STUDY_UID_TAG, "study_names"),
        SEES_A,
        accept=JSON,
    ),
    Search(
        "qido_instances_by_a_sop_uid",
        "dicomweb",
        "/dicomweb/instances?SOPInstanceUID={sop}",
        qido_names(SOP_UID_TAG, "sop_names"),
        SEES_A,
        accept=JSON,
    ),
    Search(
        "api_access_events",
        "api",
        "/api/v1/access-events/",
        api_names("study_uid", "study_names"),
        READS_EVENTS_OF,
    ),
    Search("api_studies", "api", "/api/v1/studies/", api_names("study_instance_uid", "study_names"), SEES_STUDY),
    Search("api_patients", "api", "/api/v1/patients/", api_names("id", "patient_names"), SEES_STUDY),
    Search("api_consults", "api", "/api/v1/consults/", api_names("id", "consult_names"), SEES_CONSULT),
    Search("study_list_page", "page", "/studies/", study_list_names, SEES_STUDY),
]


def search_params() -> list:
    cases = []
    for search in SEARCHES:
        for actor in ACTORS:
            if actor == ANONYMOUS:
                label = LOGIN if search.kind == "page" else "401"
            else:
                label = "+".join(sorted(search.expected[actor])) or "nothing"
            marks = ()
            reason = KNOWN_BUGS.get((search.name, actor))
            if reason:
                marks = (pytest.mark.xfail(strict=True, reason=reason),)
            cases.append(pytest.param(search, actor, id=f"{search.name}-{actor}-{label}", marks=marks))
    return cases


@pytest.mark.parametrize(("search", "actor"), search_params())
def test_searches_for_mrn_4711_list_only_the_studies_records_and_consults_the_actor_may_see(world, search, actor):
    client = client_for(world, actor, search.kind)
    path = search.path.format(uid=world.uid, sop=world.sop_uid)
    response = client.get(path, headers={"Accept": search.accept} if search.accept else {})
    response.body = content_of(response)
    if actor == ANONYMOUS:
        if search.kind == "page":
            assert response.status_code == 302 and response["Location"].startswith(reverse("account_login"))
        else:
            assert response.status_code == 401, response.body[:300]
        return
    assert response.status_code == 200, response.body[:300]
    assert search.found(world, response) == search.expected[actor]
    if actor not in (OWNER, COLLEAGUE, ASSIGNED):
        # Not even in passing (an offer, a count, a link): nothing names A's patient or study.
        assert SURNAME_A not in response.body and world.uid.encode() not in response.body


# -- the consult room ------------------------------------------------------------------------------

ORIGIN = (b"origin", b"http://testserver")
ROOM_MEMBERS = {"accepted": {OWNER, ASSIGNED}, "offered": {OWNER}}
ROOM_HISTORY = {"accepted": ["Thanks for taking this one."], "offered": []}


def room_answer(consult_id: int, headers) -> int | list[str]:
    """The close code of a refused handshake, or the texts of the chat history a member joins with."""
    from teleconsult.asgi import application

    async def scenario():
        comm = WebsocketCommunicator(application, f"/ws/consults/{consult_id}/", headers=headers)
        await comm.connect()  # accepted first, so that a refusal is a close code
        history = None
        while True:
            output = await comm.receive_output(timeout=3)
            if output["type"] == "websocket.close":
                await comm.disconnect(code=output.get("code"))  # the client's side of the close
                return output.get("code")
            frame = json.loads(output["text"])
            if frame["type"] == "chat.history":
                history = [message["text"] for message in frame["messages"]]
            elif frame["type"] == "presence":  # the last frame of joining
                await comm.disconnect()
                assert history is not None, "joined without the chat history"
                return history

    return async_to_sync(scenario)()


def room_params() -> list:
    cases = []
    for which, members in ROOM_MEMBERS.items():
        for actor in ACTORS:
            label = "joins" if actor in members else str(FORBIDDEN)
            cases.append(pytest.param(which, actor, id=f"{which}-{actor}-{label}"))
    return cases


@pytest.mark.parametrize(("which", "actor"), room_params())
def test_consult_room_websocket_lets_in_only_the_care_team_and_closes_with_4403_for_everyone_else(
    world, which, actor, monkeypatch
):
    # The consumer's database calls run on this thread, in the module's open transaction: the
    # connection must not be "closed as old" between them (channels.testing does the same, but
    # only while a frame is sent or received).
    monkeypatch.setattr("channels.db.close_old_connections", lambda: None)
    target = getattr(world, which)
    headers = [ORIGIN]
    if actor != ANONYMOUS:
        headers.append((b"authorization", f"Token {Token.objects.get(user=world.users[actor]).key}".encode()))
    answer = room_answer(target.pk, headers)
    if actor in ROOM_MEMBERS[which]:
        assert answer == ROOM_HISTORY[which]
    else:
        assert answer == FORBIDDEN

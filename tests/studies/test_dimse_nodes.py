"""DICOM nodes: ``manage.py add_dicom_node``, who an association comes from, the nodes page, and
the C-STORE status of each ingest outcome."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from accounts.models import Organization
from studies import nodes
from studies.ingest import REFUSAL_CODES, IngestResult
from studies.ingest import dimse as ingest_dimse
from studies.models import DicomNode, RejectedAssociation
from tests.factories import UserFactory


@pytest.fixture
def practice(physician):
    return physician.memberships.get().practice


@pytest.fixture
def other_admin(db):
    """A practice admin of another practice."""
    return UserFactory(role="physician", email="other-admin@example.com")


def add(*args) -> str:
    out = StringIO()
    call_command("add_dicom_node", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


# -- add_dicom_node ------------------------------------------------------------------------------


def test_add_dicom_node_registers_the_node_under_the_owners_practice(physician, practice):
    output = add("CT_SCANNER_1", "10.0.0.5", "104", "--owner", "OWNER@example.com")

    node = DicomNode.objects.get()
    assert (node.ae_title, node.host, node.port, node.practice, node.owner) == (
        "CT_SCANNER_1",
        "10.0.0.5",
        104,
        practice,
        physician,
    )
    assert node.enabled and not node.send_results
    assert "CT_SCANNER_1 at 10.0.0.5:104 registered" in output


def test_add_dicom_node_with_a_named_practice_the_owner_belongs_to(physician):
    clinic = Organization.objects.create(name="North Clinic")
    clinic.add_member(physician)

    add("MR1", "pacs.example.org", "11112", "--owner", physician.email, "--practice", "north clinic")

    assert DicomNode.objects.get().practice == clinic


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("CT1", "10.0.0.5", "104", "--owner", "nobody@example.com"), "No account with email nobody@example.com"),
        (("CT1", "10.0.0.5", "0", "--owner", "owner@example.com"), "Port must be from 1 to 65535, not 0"),
        (("CT1", "10.0.0.5", "65536", "--owner", "owner@example.com"), "Port must be from 1 to 65535"),
        (("CT1", "10.0.0.5", "http", "--owner", "owner@example.com"), "Port must be a number"),
        (("A" * 17, "10.0.0.5", "104", "--owner", "owner@example.com"), "17 characters long; the limit is 16"),
        (("CT\\1", "10.0.0.5", "104", "--owner", "owner@example.com"), "may not contain a backslash"),
        (("CT\x071", "10.0.0.5", "104", "--owner", "owner@example.com"), "no control characters"),
        (("   ", "10.0.0.5", "104", "--owner", "owner@example.com"), "An AE title is needed"),
        (("CT1", "not a host!", "104", "--owner", "owner@example.com"), "neither an IP address nor a valid host"),
        (("CT1", "10.0.0.5", "104", "--owner", "owner@example.com", "--practice", "Nowhere"), "No practice named"),
    ],
)
def test_add_dicom_node_refuses_bad_input_naming_the_problem(physician, args, message):
    with pytest.raises(CommandError, match=message.replace("\\", "\\\\").replace("(", r"\(").replace(")", r"\)")):
        add(*args)
    assert not DicomNode.objects.exists()


def test_add_dicom_node_refuses_an_owner_outside_the_practice(physician, outsider):
    outsiders_practice = outsider.memberships.get().practice

    with pytest.raises(CommandError, match="is not a member of practice"):
        add("CT1", "10.0.0.5", "104", "--owner", physician.email, "--practice", str(outsiders_practice.pk))
    assert not DicomNode.objects.exists()


def test_add_dicom_node_refuses_a_patient_owner_and_a_second_node_with_the_same_ae_title_and_host(
    physician, patient_user
):
    add("CT1", "10.0.0.5", "104", "--owner", physician.email)

    with pytest.raises(CommandError, match="already registered"):
        add("CT1", "10.0.0.5", "105", "--owner", physician.email)
    with pytest.raises(CommandError, match="belongs to no practice"):
        add("CT2", "10.0.0.5", "104", "--owner", patient_user.email)


# -- who an association comes from ----------------------------------------------------------------


@pytest.fixture
def node(physician, practice):
    return nodes.add_node(ae_title="MODALITY", host="127.0.0.1", port=104, owner=physician, practice=practice)


def test_sender_is_the_enabled_node_at_its_own_address(node):
    assert nodes.sender_for("MODALITY  ", "127.0.0.1").node == node
    assert nodes.sender_for("MODALITY", "::ffff:127.0.0.1").node == node


@pytest.mark.parametrize(
    ("calling", "address", "reason"),
    [
        ("STRANGER", "127.0.0.1", "unknown_ae"),
        ("modality", "127.0.0.1", "unknown_ae"),
        ("MODALITY", "127.0.0.2", "wrong_address"),
    ],
)
def test_unknown_ae_or_known_ae_from_another_address_is_refused(node, calling, address, reason):
    assert nodes.sender_for(calling, address).reason == reason


def test_disabled_node_and_owner_who_left_the_practice_are_refused(node, physician, practice):
    nodes.set_enabled(node, False)
    assert nodes.sender_for("MODALITY", "127.0.0.1").reason == "disabled"

    nodes.set_enabled(node, True)
    physician.memberships.filter(practice=practice).delete()
    assert nodes.sender_for("MODALITY", "127.0.0.1").reason == "owner_unavailable"


def test_a_node_named_by_host_name_is_matched_on_the_addresses_it_resolves_to(physician, practice):
    nodes.add_node(ae_title="PACS", host="localhost", port=104, owner=physician, practice=practice)

    assert nodes.sender_for("PACS", "127.0.0.1").node is not None
    assert nodes.sender_for("PACS", "10.9.9.9").reason == "wrong_address"


def test_rejections_are_counted_per_ae_title_address_and_reason(node):
    for _ in range(3):
        verdict = nodes.sender_for("MODALITY", "127.0.0.2")
        nodes.record_rejection(calling_ae="MODALITY", called_ae="TELECONSULT", address="127.0.0.2", verdict=verdict)
    nodes.record_rejection(
        calling_ae="STRANGER", called_ae="X", address="127.0.0.1", verdict=nodes.sender_for("STRANGER", "127.0.0.1")
    )

    known = RejectedAssociation.objects.get(calling_ae="MODALITY")
    assert (known.count, known.reason, known.node, known.practice) == (3, "wrong_address", node, node.practice)
    unknown = RejectedAssociation.objects.get(calling_ae="STRANGER")
    assert (unknown.count, unknown.node, unknown.practice) == (1, None, None)


# -- C-STORE statuses ---------------------------------------------------------------------------


def test_every_refusal_code_of_a_file_has_a_failure_status_in_the_dicom_ranges():
    for code in REFUSAL_CODES:
        answer = ingest_dimse.answer_for(IngestResult(filename="x", status="refused", code=code, reason="Why."))
        assert (
            0xA700 <= answer.status <= 0xA7FF or 0xA900 <= answer.status <= 0xA9FF or 0xC000 <= answer.status <= 0xCFFF
        )
        assert answer.comment.startswith(f"{code}: ")
    assert set(ingest_dimse.REFUSAL_STATUS) <= set(REFUSAL_CODES)


def test_statuses_say_what_ingest_did():
    stored = IngestResult(filename="x", status="stored")
    again = IngestResult(filename="x", status="already_stored")
    coerced = IngestResult(
        filename="x", status="stored", coerced=True, reason="Stored; the file does not fully conform"
    )
    forbidden = IngestResult(
        filename="x", status="refused", code="forbidden_study", reason="The file belongs to study 1.2.3 ... " * 5
    )

    assert ingest_dimse.answer_for(stored).status == 0x0000
    assert ingest_dimse.answer_for(again).status == 0x0000
    assert ingest_dimse.answer_for(coerced).status == 0xB000
    answer = ingest_dimse.answer_for(forbidden)
    assert answer.status == 0xA900
    assert len(answer.comment) <= 64 and answer.comment.startswith("forbidden_study: ")
    assert answer.as_dataset().ErrorComment == answer.comment


def test_error_comment_is_printable_ascii_of_at_most_64_characters():
    assert ingest_dimse.comment("Müller\\x\n" + "y" * 100) == "M?ller?x?" + "y" * 52 + "..."


# -- the nodes page -------------------------------------------------------------------------------


def test_administrator_finds_the_page_in_the_menu_and_sees_every_node_and_rejection(client, admin_user, node):
    RejectedAssociation.objects.create(calling_ae="STRANGER", address="10.1.1.1", reason="unknown_ae")
    client.force_login(admin_user)

    home = client.get(reverse("home"))
    page = client.get(reverse("studies:nodes"))

    assert reverse("studies:nodes") in home.content.decode()
    assert page.status_code == 200
    html = page.content.decode()
    assert f'data-node="{node.pk}"' in html and "MODALITY" in html
    assert "STRANGER" in html and "10.1.1.1" in html


def test_practice_admin_sees_their_practices_nodes_and_their_rejections_only(
    client, physician, node, other_admin, admin_user
):
    theirs = nodes.add_node(
        ae_title="OTHER", host="10.0.0.9", port=104, owner=other_admin, practice=other_admin.memberships.get().practice
    )
    RejectedAssociation.objects.create(calling_ae="STRANGER", address="10.1.1.1", reason="unknown_ae")
    RejectedAssociation.objects.create(
        calling_ae="MODALITY", address="10.1.1.2", reason="wrong_address", node=node, practice=node.practice
    )
    client.force_login(physician)

    html = client.get(reverse("studies:nodes")).content.decode()

    assert f'data-node="{node.pk}"' in html
    assert f'data-node="{theirs.pk}"' not in html
    assert "10.1.1.2" in html and "STRANGER" not in html


def test_clinician_who_manages_no_practice_and_patient_get_404_and_no_menu_entry(client, physician, patient_user):
    clinic = Organization.objects.create(name="Shared clinic")
    member = UserFactory(role="physician", email="member@example.com", practice=clinic)
    for user in (member, patient_user):
        client.force_login(user)
        assert client.get(reverse("studies:nodes")).status_code == 404
        assert reverse("studies:nodes") not in client.get(reverse("home")).content.decode()


def test_outsider_practice_admin_gets_404_on_another_practices_node(client, node, other_admin):
    client.force_login(other_admin)

    disable = client.post(reverse("studies:change-node", args=[node.pk]), {"enabled": "0"})
    delete = client.post(reverse("studies:delete-node", args=[node.pk]))

    assert (disable.status_code, delete.status_code) == (404, 404)
    node.refresh_from_db()
    assert node.enabled


def test_practice_admin_sets_results_back_and_how_priors_are_pulled_on_the_page(client, physician, node, other_admin):
    client.force_login(physician)
    page = client.get(reverse("studies:nodes")).content.decode()
    assert 'name="send_results"' in page and 'name="retrieve_with"' in page
    url = reverse("studies:node-settings", args=[node.pk])
    client.post(url, {"send_results": "1", "retrieve_with": "get"})
    node.refresh_from_db()
    assert (node.send_results, node.retrieve_with) == (True, "get")
    refused = client.post(url, {"retrieve_with": "ftp"}, follow=True)
    assert "Pull priors with one of: move, get." in refused.content.decode()
    node.refresh_from_db()
    assert (node.send_results, node.retrieve_with) == (True, "get")
    # Another practice's admin: a 404, and nothing changes.
    client.force_login(other_admin)
    assert client.post(url, {"retrieve_with": "move"}).status_code == 404
    node.refresh_from_db()
    assert node.retrieve_with == "get"


def test_practice_admin_adds_disables_enables_and_deletes_a_node(client, physician, practice):
    client.force_login(physician)

    response = client.post(
        reverse("studies:add-node"),
        {"ae_title": "US_ROOM_2", "host": "10.0.0.7", "port": "104", "owner": physician.email, "practice": practice.pk},
    )
    assert response.status_code == 302
    node = DicomNode.objects.get()
    assert (node.ae_title, node.created_by, node.practice) == ("US_ROOM_2", physician, practice)

    client.post(reverse("studies:change-node", args=[node.pk]), {"enabled": "0"})
    node.refresh_from_db()
    assert not node.enabled
    client.post(reverse("studies:change-node", args=[node.pk]), {"enabled": "1"})
    node.refresh_from_db()
    assert node.enabled

    client.post(reverse("studies:delete-node", args=[node.pk]))
    assert not DicomNode.objects.exists()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"ae_title": "X" * 17}, "the limit is 16"),
        ({"ae_title": "A\\B"}, "may not contain a backslash"),
        ({"port": "70000"}, "Port must be from 1 to 65535"),
        ({"host": "bad host"}, "neither an IP address nor a valid host name"),
        ({"owner": "outsider@example.com"}, "is not a member of practice"),
        ({"owner": "nobody@example.com"}, "is not a member of practice"),
    ],
)
def test_page_refuses_bad_input_with_a_message_naming_the_problem(
    client, physician, practice, outsider, fields, message
):
    client.force_login(physician)
    data = {"ae_title": "CT1", "host": "10.0.0.5", "port": "104", "owner": physician.email, "practice": practice.pk}

    response = client.post(reverse("studies:add-node"), {**data, **fields}, follow=True)

    assert response.status_code == 200
    assert message in response.content.decode().replace("&#x27;", "'")
    assert not DicomNode.objects.exists()


def test_practice_admin_cannot_add_a_node_to_another_practice(client, physician, other_admin):
    client.force_login(physician)
    elsewhere = other_admin.memberships.get().practice

    response = client.post(
        reverse("studies:add-node"),
        {"ae_title": "CT1", "host": "10.0.0.5", "port": "104", "owner": other_admin.email, "practice": elsewhere.pk},
        follow=True,
    )

    assert "Select a valid choice" in response.content.decode()
    assert not DicomNode.objects.exists()

"""The service dashboard: figures checked against hand-counted consults, who may read it, its CSV
downloads and its live part."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership
from consultations import charts, dashboard
from consultations.models import ConsultRequest, Report, State
from tests.factories import ConsultFactory, SpecialistFactory, UserFactory, make_study, practice_of

# A fixed Wednesday noon (UTC) so that the weeks of the fixtures are known.
NOW = dt.datetime(2026, 12, 9, 12, 0, tzinfo=dt.UTC)


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def consult(requester, *, priority="routine", specialty="chest", state=State.REPORTED, submitted, reported=None, due):
    """A consult written as its life would have left it (the figures read columns, not events)."""
    made = ConsultFactory(requester=requester, priority=priority, specialty=specialty)
    ConsultRequest.objects.filter(pk=made.pk).update(
        state=state, submitted_at=submitted, reported_at=reported, due_at=due
    )
    return ConsultRequest.objects.get(pk=made.pk)


@pytest.fixture
def practice_admin(physician):
    admin = UserFactory(role="physician", email="lead@example.com", name="Dr Lead")
    practice_of(physician).add_member(admin, role=Membership.Role.ADMIN)
    return admin


@pytest.fixture
def figures(physician, specialist):
    """This week (Mon 7 Dec): routine reported after 10 h and 30 h (the second late), urgent after
    2 h; last week: routine after 20 h. Open now: one overdue STAT, one routine far from due, one
    urgent at 80 % of its window. Grades: agree, major, and one ungraded."""
    hour = dt.timedelta(hours=1)
    this_week = dt.datetime(2026, 12, 7, 8, 0, tzinfo=dt.UTC)
    made = [
        consult(physician, submitted=this_week, reported=this_week + 10 * hour, due=this_week + 24 * hour),
        consult(physician, submitted=this_week, reported=this_week + 30 * hour, due=this_week + 24 * hour),
        consult(
            physician,
            priority="urgent",
            specialty="neuroradiology",
            submitted=this_week,
            reported=this_week + 2 * hour,
            due=this_week + 4 * hour,
        ),
        consult(
            physician,
            submitted=this_week - 7 * 24 * hour,
            reported=this_week - 7 * 24 * hour + 20 * hour,
            due=this_week - 6 * 24 * hour,
        ),
    ]
    for reported, grade in zip(made[:3], ["agree", "major", ""], strict=True):
        Report.objects.create(consult=reported, author=specialist, agreement=grade, signed_at=reported.reported_at)
    consult(physician, priority="stat", state=State.ACCEPTED, submitted=NOW - 3 * hour, due=NOW - hour)
    consult(physician, state=State.SUBMITTED, submitted=NOW - hour, due=NOW + 100 * hour)
    consult(physician, priority="urgent", state=State.ACCEPTED, submitted=NOW - 8 * hour, due=NOW + 2 * hour)
    return made


def test_figures_match_hand_counts(figures):
    board = dashboard.build(ConsultRequest.objects.all(), now=NOW)
    open_rows = {row[0]: row[1:] for row in board.open.rows}
    assert open_rows["Accepted"] == [1, 1, 0, 2]  # stat, urgent, routine, all
    assert open_rows["Waiting for a specialist"] == [0, 0, 1, 1]
    # Overdue first, then the one past the warning part of its window; not the far one.
    assert [c.priority for c in board.due] == ["stat", "urgent"]
    this_week, last_week = board.turnaround.rows[-1], board.turnaround.rows[-2]
    assert this_week[0] == "2026-12-07" and last_week[0] == "2026-11-30"
    # Columns: week, then p50, p90, n for stat, urgent, routine.
    assert this_week[1:4] == [None, None, 0]
    assert this_week[4:7] == [2.0, 2.0, 1]
    assert this_week[7:10] == [10.0, 30.0, 2]
    assert last_week[7:10] == [20.0, 20.0, 1]
    sla = {row[0]: row[1:] for row in board.sla.rows}
    assert sla["2026-12-07"] == [2, 3, 67] and sla["2026-11-30"] == [1, 1, 100]
    assert sla["2026-11-23"] == [0, 0, None]
    assert dict(board.volume.rows) == {"Chest": 6, "Neuroradiology": 1}  # submitted within 12 weeks
    assert dict(board.agreement.rows) == {
        "Agree": 1,
        "Minor discrepancy": 0,
        "Major discrepancy": 1,
        "Not graded": 1,
    }


def test_a_later_signed_version_grades_the_consult_once(figures, specialist):
    first = figures[0]
    Report.objects.create(consult=first, author=specialist, version=2, agreement="minor", signed_at=NOW)
    board = dashboard.build(ConsultRequest.objects.all(), now=NOW)
    assert dict(board.agreement.rows)["Agree"] == 0 and dict(board.agreement.rows)["Minor discrepancy"] == 1


def test_percentile_is_nearest_rank():
    assert dashboard.percentile([], 0.5) is None
    assert dashboard.percentile([5.0], 0.9) == 5.0
    assert dashboard.percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.5) == 5
    assert dashboard.percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.9) == 9


@pytest.fixture
def clinician(physician):
    """A member of the physician's practice who does not administer it."""
    return UserFactory(role="physician", email="member@example.com", name="Dr Member", practice=practice_of(physician))


def test_administrators_and_practice_admins_read_it_others_get_404(
    figures, admin_user, practice_admin, clinician, patient_user
):
    specialist = SpecialistFactory(email="reader@example.com", practice=False)
    assert signed_in(admin_user).get(reverse("consultations:dashboard")).status_code == 200
    assert signed_in(practice_admin).get(reverse("consultations:dashboard")).status_code == 200
    for user in (clinician, specialist, patient_user):
        assert signed_in(user).get(reverse("consultations:dashboard")).status_code == 404, user.role
    assert Client().get(reverse("consultations:dashboard")).status_code == 302


def test_a_practice_admin_counts_only_their_practices_consults(figures, practice_admin):
    outsider = UserFactory(role="physician", email="elsewhere@example.com")
    elsewhere = ConsultFactory(requester=outsider, study=make_study(uploader=outsider))
    ConsultRequest.objects.filter(pk=elsewhere.pk).update(state=State.SUBMITTED, submitted_at=timezone.now())
    mine = dashboard.consults_for(practice_admin)
    assert elsewhere.pk not in set(mine.values_list("pk", flat=True))
    assert mine.count() == ConsultRequest.objects.count() - 1
    page = signed_in(practice_admin).get(reverse("consultations:dashboard")).content.decode()
    assert "the practices you administer" in page


def test_navigation_offers_it_to_administrators_only(admin_user, practice_admin, clinician):
    assert 'href="/dashboard/"' in signed_in(admin_user).get(reverse("home")).content.decode()
    assert 'href="/dashboard/"' in signed_in(practice_admin).get(reverse("home")).content.decode()
    assert 'href="/dashboard/"' not in signed_in(clinician).get(reverse("studies:list")).content.decode()


def test_each_figure_downloads_as_csv_and_an_unknown_one_is_400(figures, admin_user):
    client = signed_in(admin_user)
    for key in ("open", "due", "turnaround", "sla", "volume", "agreement"):
        response = client.get(reverse("consultations:dashboard"), {"csv": key})
        assert response.status_code == 200 and response["Content-Type"].startswith("text/csv"), key
        assert f'filename="{key}-' in response["Content-Disposition"]
        rows = list(csv.reader(io.StringIO(response.content.decode())))
        assert (
            rows[0]
            == getattr(dashboard.build(ConsultRequest.objects.all()), key if key != "due" else "due_table").columns
        )
    volume = client.get(reverse("consultations:dashboard"), {"csv": "volume"}).content.decode()
    assert list(csv.reader(io.StringIO(volume)))[0] == ["Specialty", "Consults"]
    wrong = client.get(reverse("consultations:dashboard"), {"csv": "nonsense"})
    assert wrong.status_code == 400 and b"No figure named 'nonsense'" in wrong.content


def test_the_live_part_comes_alone_and_the_page_draws_charts(figures, admin_user):
    client = signed_in(admin_user)
    part = client.get(reverse("consultations:dashboard"), {"part": "now"}).content.decode()
    assert "Open consults now" in part and "<html" not in part
    assert "Overdue and near due now" in part
    page = client.get(reverse("consultations:dashboard")).content.decode()
    assert page.count('<svg class="chart"') == 5 and "js/dashboard.js" in page


def test_chart_labels_are_escaped():
    svg = str(charts.bars([("<script>x</script>", 3)], title="t<"))
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "t&lt;" in svg


def test_the_live_part_and_a_csv_compute_only_their_own_figures(figures, admin_user, monkeypatch):
    def not_needed(*args, **kwargs):
        raise AssertionError("a weekly figure was computed for the live part or another figure's CSV")

    for name in ("turnaround", "sla_compliance", "volume_by_specialty", "agreement"):
        monkeypatch.setattr(dashboard, name, not_needed)
    client = signed_in(admin_user)
    assert client.get(reverse("consultations:dashboard"), {"part": "now"}).status_code == 200
    assert client.get(reverse("consultations:dashboard"), {"csv": "open"}).status_code == 200
    assert client.get(reverse("consultations:dashboard"), {"csv": "due"}).status_code == 200


def test_csv_cells_a_spreadsheet_would_run_are_defused(figures, admin_user, specialist):
    specialist.name = '=HYPERLINK("http://x")'
    specialist.save(update_fields=["name"])
    ConsultRequest.objects.filter(state=State.ACCEPTED).update(assignee=specialist, due_at=timezone.now())
    body = signed_in(admin_user).get(reverse("consultations:dashboard"), {"csv": "due"}).content.decode()
    rows = list(csv.reader(io.StringIO(body)))
    assert any(row[-1] == '\'=HYPERLINK("http://x")' for row in rows[1:]), rows

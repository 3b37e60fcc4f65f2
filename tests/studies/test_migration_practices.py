"""The upgrade to practices on a database with data: the attack's shape (one MRN uploaded by two
physicians, the stranger's patient account linked to the shared record) ends as two records that
never meet, every study filed under its uploader's practice, and no uploader grant left over."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("accounts", "0001_initial"), ("studies", "0003_instance_metadata_header_json")]


@pytest.fixture
def old_state(transactional_db):
    executor = MigrationExecutor(connection)
    # Later apps' migrations that depend on these go back too.
    executor.migrate(BEFORE)
    yield executor.loader.project_state(BEFORE).apps
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def test_upgrade_splits_a_shared_record_by_practice_and_ends_uploader_grants(old_state):
    apps = old_state
    User = apps.get_model("accounts", "User")
    Patient = apps.get_model("studies", "Patient")
    Study = apps.get_model("studies", "Study")
    AccessGrant = apps.get_model("studies", "AccessGrant")
    PatientInvitation = apps.get_model("studies", "PatientInvitation")

    owner = User.objects.create(email="a@example.com", name="Dr A", role="physician")
    stranger = User.objects.create(email="s@example.com", name="Dr S", role="physician")
    puppet = User.objects.create(email="p@example.com", name="Puppet", role="patient")
    shared = Patient.objects.create(patient_id="MRN-4711", name="Doe^Jane", uploaded_by=owner, account=puppet)
    mine = Study.objects.create(study_instance_uid="1.2.3.1", patient=shared, uploaded_by=owner)
    theirs = Study.objects.create(study_instance_uid="1.2.3.2", patient=shared, uploaded_by=stranger)
    Study.objects.create(study_instance_uid="1.2.3.3", patient=shared, uploaded_by=None)
    for study, user in ((mine, owner), (theirs, stranger)):
        AccessGrant.objects.create(user=user, study=study, reason="uploader")
    PatientInvitation.objects.create(
        patient=shared, email=puppet.email, invited_by=stranger, accepted_at=mine.created_at
    )

    MigrationExecutor(connection).migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    from accounts.models import Membership
    from studies.models import AccessGrant as Grant
    from studies.models import Patient as NewPatient
    from studies.models import Study as NewStudy

    practice_of = {m.user_id: m.practice_id for m in Membership.objects.all()}
    assert set(practice_of) == {owner.pk, stranger.pk}  # clinicians only, each a practice of their own
    studies = {s.study_instance_uid: s for s in NewStudy.objects.select_related("patient")}
    assert studies["1.2.3.1"].practice_id == studies["1.2.3.1"].patient.practice_id == practice_of[owner.pk]
    assert studies["1.2.3.2"].practice_id == studies["1.2.3.2"].patient.practice_id == practice_of[stranger.pk]
    assert studies["1.2.3.1"].patient_id != studies["1.2.3.2"].patient_id
    assert studies["1.2.3.3"].practice_id not in practice_of.values()  # nobody's: kept for administrators
    # The account the stranger invited stays on the stranger's record only.
    assert studies["1.2.3.2"].patient.account_id == puppet.pk
    assert studies["1.2.3.1"].patient.account_id is None
    assert NewPatient.objects.filter(patient_id="MRN-4711").count() == 3
    assert not Grant.objects.active().filter(reason="uploader").exists()

    from accounts.models import User as CurrentUser
    from studies.models import Study as Current

    def visible(user) -> list[str]:
        return list(
            Current.objects.visible_to(CurrentUser.objects.get(pk=user.pk)).values_list("study_instance_uid", flat=True)
        )

    assert visible(owner) == ["1.2.3.1"]
    assert visible(stranger) == ["1.2.3.2"]
    assert visible(puppet) == ["1.2.3.2"]

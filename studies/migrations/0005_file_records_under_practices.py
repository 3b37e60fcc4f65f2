from django.db import migrations
from django.utils import timezone


def split_records_by_practice(apps, schema_editor):
    """File every study under its uploader's practice, and give each practice its own patient
    records: a record whose studies came from several practices (the same MRN uploaded by
    strangers) is split, so each practice keeps a record of its own and none sees another's.

    The original record stays with the practice of the one who created it. A linked portal
    account stays on the record whose practice invited it (an accepted invitation by a member),
    else on the original; pending invitations follow the practice of whoever sent them.

    The uploaders' own grants end: the practice gives its members access now, and a grant of
    their own would outlive their leaving it.
    """
    Organization = apps.get_model("accounts", "Organization")
    Membership = apps.get_model("accounts", "Membership")
    Patient = apps.get_model("studies", "Patient")
    Study = apps.get_model("studies", "Study")
    PatientInvitation = apps.get_model("studies", "PatientInvitation")
    AccessGrant = apps.get_model("studies", "AccessGrant")
    if not Study.objects.exists() and not Patient.objects.exists():
        return
    first_practice: dict[int, int] = {}
    for membership in Membership.objects.order_by("since", "pk"):
        first_practice.setdefault(membership.user_id, membership.practice_id)
    orphans = None

    def practice_of(user_id):
        nonlocal orphans
        if user_id in first_practice:
            return first_practice[user_id]
        if orphans is None:
            orphans = Organization.objects.create(name="Records from before practices", kind="clinic").pk
        return orphans

    for study in Study.objects.filter(practice__isnull=True).iterator():
        Study.objects.filter(pk=study.pk).update(practice_id=practice_of(study.uploaded_by_id))
    for patient in Patient.objects.order_by("pk").iterator():
        by_practice: dict[int, list[int]] = {}
        for study_pk, practice_pk in Study.objects.filter(patient=patient).values_list("pk", "practice_id"):
            by_practice.setdefault(practice_pk, []).append(study_pk)
        home = first_practice.get(patient.uploaded_by_id)
        if home not in by_practice:
            home = sorted(by_practice)[0] if by_practice else practice_of(patient.uploaded_by_id)
        inviters = {}
        for invitation in PatientInvitation.objects.filter(patient=patient):
            if invitation.invited_by_id is not None and invitation.invited_by_id in first_practice:
                inviters[invitation.pk] = first_practice[invitation.invited_by_id]
        linked_practice = home
        accepted = PatientInvitation.objects.filter(patient=patient, accepted_at__isnull=False).order_by("-accepted_at")
        for invitation in accepted:
            if inviters.get(invitation.pk) in by_practice:
                linked_practice = inviters[invitation.pk]
                break
        account = patient.account_id
        Patient.objects.filter(pk=patient.pk).update(
            practice_id=home, account_id=account if linked_practice == home else None
        )
        for practice_pk, study_pks in sorted(by_practice.items()):
            if practice_pk == home:
                continue
            copy = Patient.objects.create(
                practice_id=practice_pk,
                patient_id=patient.patient_id,
                issuer=patient.issuer,
                name=patient.name,
                birth_date=patient.birth_date,
                sex=patient.sex,
                account_id=account if linked_practice == practice_pk else None,
                uploaded_by_id=Study.objects.filter(pk=study_pks[0]).values_list("uploaded_by_id", flat=True)[0],
            )
            Study.objects.filter(pk__in=study_pks).update(patient=copy)
            for invitation_pk, inviter_practice in inviters.items():
                if inviter_practice == practice_pk:
                    PatientInvitation.objects.filter(pk=invitation_pk).update(patient=copy)
    AccessGrant.objects.filter(reason="uploader", revoked_at__isnull=True).update(revoked_at=timezone.now())


class Migration(migrations.Migration):
    """The data step on its own: PostgreSQL checks the foreign keys it writes when its transaction
    commits, and refuses to change the same tables' columns before then."""

    dependencies = [
        ("accounts", "0002_practices"),
        ("studies", "0004_patient_records_per_practice"),
    ]

    operations = [
        migrations.RunPython(split_records_by_practice, migrations.RunPython.noop),
    ]

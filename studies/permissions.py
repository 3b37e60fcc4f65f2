"""The one place that answers "may this user see this study?" for every route.

Anything a user may not see is a 404 for them, so existence does not leak.
"""

from __future__ import annotations

from django.db.models import Q
from django.http import Http404

from .models import AccessGrant, Instance, Patient, Series, Study
from .sharing import is_unlocked, usable_link


def visible_studies(user):
    if isinstance(user, ShareAccess):
        return Study.objects.filter(pk=user.study_id)
    return Study.objects.visible_to(user)


def visible_branches(user):
    """``visible_studies(user)`` as the branches of its rule, for searches that read a first page
    in order (``Study.objects.visible_branches``); None where the one queryset is as good."""
    if isinstance(user, ShareAccess):
        return None
    return Study.objects.visible_branches(user)


def can_view_study(user, study: Study) -> bool:
    return visible_studies(user).filter(pk=study.pk).exists()


def get_study_for_user(user, study_uid: str) -> Study:
    try:
        return visible_studies(user).select_related("patient").get(study_instance_uid=study_uid)
    except Study.DoesNotExist:
        raise Http404("No such study.") from None


def get_series_for_user(user, study_uid: str, series_uid: str) -> Series:
    study = get_study_for_user(user, study_uid)
    try:
        return study.series.get(series_instance_uid=series_uid)
    except Series.DoesNotExist:
        raise Http404("No such series.") from None


def get_instance_for_user(user, study_uid: str, series_uid: str, instance_uid: str) -> Instance:
    series = get_series_for_user(user, study_uid, series_uid)
    try:
        return series.instances.select_related("series__study").get(sop_instance_uid=instance_uid)
    except Instance.DoesNotExist:
        raise Http404("No such instance.") from None


def visible_patients(user):
    """Records of the user's practices, records of studies shared with them, their own records."""
    if not user or not user.is_authenticated or not user.is_active or isinstance(user, ShareAccess):
        return Patient.objects.none()
    if user.is_admin:
        return Patient.objects.all()
    of_studies = Patient.objects.filter(studies__in=visible_studies(user)).values("pk")
    practices = user.practice_ids() if not user.is_patient else []
    return Patient.objects.filter(Q(pk__in=of_studies) | Q(practice_id__in=practices) | Q(account=user))


def practice_patients(user):
    """Records the user may act on for their practice (invite the patient, link, unlink): those of
    the practices they are a member of; every record for administrators."""
    if not user or not user.is_authenticated or not user.is_active or isinstance(user, ShareAccess):
        return Patient.objects.none()
    if user.is_admin:
        return Patient.objects.all()
    if user.is_patient:
        return Patient.objects.none()
    return Patient.objects.filter(practice_id__in=user.practice_ids())


def get_patient_for_user(user, pk: int) -> Patient:
    try:
        return visible_patients(user).get(pk=pk)
    except Patient.DoesNotExist:
        raise Http404("No such patient.") from None


def grant_access(*, user, study: Study, reason: str, granted_by=None, source: str = "", until=None) -> AccessGrant:
    """Give ``user`` access to ``study`` for ``reason`` (idempotent per user, study, reason, source)."""
    (grant,) = grant_access_to_studies(
        user=user, studies=[study], reason=reason, granted_by=granted_by, source=source, until=until
    )
    return grant


def grant_access_to_studies(
    *, user, studies: list[Study], reason: str, granted_by=None, source: str = "", until=None, created=()
) -> list[AccessGrant]:
    """``grant_access`` for several studies at once (one query for the grants held, one insert for
    the rest); the grants, in the order of ``studies``. ``created``: pks of studies the caller's
    transaction created, which no grant can name yet, so they are not looked up."""
    held: dict[int, AccessGrant] = {}
    looked_up = [study for study in studies if study.pk not in created]
    grants = AccessGrant.objects.active().filter(user=user, study__in=looked_up, reason=reason, source=source)
    for grant in grants if looked_up else ():
        held.setdefault(grant.study_id, grant)  # the earliest, as grants are ordered by "since"
    new = []
    for study in studies:
        if study.pk not in held:
            grant = AccessGrant(
                user=user, study=study, reason=reason, source=source, granted_by=granted_by, until=until
            )
            grant.copy_study_keys(study)
            new.append(grant)
    AccessGrant.objects.bulk_create(new)
    held.update((grant.study_id, grant) for grant in new)
    return [held[study.pk] for study in studies]


def revoke_access(*, user, study: Study, reason: str, source: str = "", by=None) -> int:
    grants = AccessGrant.objects.active().filter(user=user, study=study, reason=reason, source=source)
    count = 0
    for grant in grants:
        grant.revoke(by=by)
        count += 1
    return count


class ShareAccess:
    """Whoever opens a study through a share link: sees that one study, read-only, nothing else.

    Passed where routes expect a user (the DICOMweb views), it answers like an account without
    any role; ``visible_studies`` gives it the one study of its link.
    """

    is_authenticated = True
    is_active = True
    is_admin = False
    is_patient = False
    is_physician = False
    is_specialist = False
    pk = None

    def __init__(self, share) -> None:
        self.share = share
        self.study_id = share.study_id


def get_share_for_request(request, token: str):
    """The share link behind ``token`` when it may be used now by this browser: not expired,
    revoked or locked, and unlocked with its passcode in this session. Http404 otherwise."""
    link = usable_link(token)
    if link is None or not is_unlocked(request, link):
        raise Http404("No such link.")
    return link


def get_study_for_share(request, token: str, study_uid: str | None = None) -> Study:
    """The study a share link shows; any other study UID through that link is a 404."""
    link = get_share_for_request(request, token)
    if study_uid is not None and link.study.study_instance_uid != study_uid:
        raise Http404("No such study.")
    return link.study


def can_upload(user) -> bool:
    """Members of a practice (physicians and specialists) and administrators upload studies;
    patients do not, nor clinicians no practice has admitted yet."""
    return bool(user and user.is_authenticated and user.is_active and user.has_clinical_access)

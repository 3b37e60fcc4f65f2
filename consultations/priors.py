"""Priors for a consult: what ``studies.priors`` needs to search and pull a patient's earlier
studies from the consult page (registered in ``extensions.register``).

A clinician on the consult's care team who is a member of the consult's practice may pull; the
study is filed under that practice and every member of the care team (requester, colleagues on the
consult, the specialist who took it) gets a consult grant to it, as to the consult's own study.
"""

from __future__ import annotations

from studies.models import AccessGrant
from studies.priors import Target

from .models import ConsultRequest
from .permissions import care_team_ids


def consult_target(user, pk: int) -> Target | None:
    if pk not in care_team_ids(user):
        return None
    consult = ConsultRequest.objects.select_related("study__practice", "study__patient").filter(pk=pk).first()
    if consult is None or consult.study.practice_id not in user.practice_ids():
        return None
    team = {consult.requester_id, consult.assignee_id, *consult.active_participants().values_list("user_id", flat=True)}
    patient = consult.study.patient
    return Target(
        kind="consult",
        pk=consult.pk,
        label=f"consult #{consult.pk}",
        practice=consult.study.practice,
        patient_id=patient.patient_id,
        patient_name=str(patient.name or ""),
        grant_user_ids=tuple(sorted(pk for pk in team if pk is not None)),
        grant_reason=AccessGrant.Reason.CONSULT,
        grant_source=str(consult.pk),
    )

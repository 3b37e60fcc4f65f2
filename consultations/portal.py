"""What the patient portal shows of consults: a plain-language timeline per study and the signed
reports. Patients never see drafts (``permissions.visible_reports`` gives them signed versions)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.utils import timezone

from studies.models import Study

from .models import ConsultRequest, Report, State
from .permissions import visible_consults, visible_reports
from .transitions import IN_REVIEW_STATES


@dataclass
class Step:
    when: object
    text: str
    done: bool = True


@dataclass
class StudyConsults:
    consults: list[ConsultRequest] = field(default_factory=list)
    reports: list[tuple[ConsultRequest, Report]] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)

    @property
    def status(self) -> str:
        """The latest step in words, for the study list."""
        return self.steps[-1].text if self.steps else "Your images are stored."


def _consult_steps(consult: ConsultRequest, signed: Report | None) -> list[Step]:
    steps = []
    if consult.submitted_at:
        steps.append(Step(consult.submitted_at, "Your images were sent to a specialist for a second opinion."))
    if consult.accepted_at:
        steps.append(Step(consult.accepted_at, "A specialist is reviewing your images."))
    if consult.state == State.INFO_REQUESTED:
        steps.append(Step(timezone.now(), "The specialist asked your doctor for more information."))
    if signed is not None:
        steps.append(Step(signed.signed_at, "Report ready. You can read it below."))
    elif consult.state == State.CANCELLED:
        steps.append(Step(consult.closed_at, "The request for a second opinion was cancelled by your doctor."))
    elif consult.state == State.SUBMITTED:
        steps.append(Step(None, "Waiting for a specialist to take your case.", done=False))
    elif consult.state in IN_REVIEW_STATES:
        steps.append(Step(None, "The report is not ready yet.", done=False))
    return steps


def consults_for_study(user, study: Study) -> StudyConsults:
    result = StudyConsults()
    result.steps.append(Step(study.created_at, "Your images were stored."))
    consults = visible_consults(user).filter(study=study).select_related("assignee").order_by("created_at")
    for consult in consults:
        signed = visible_reports(user, consult).filter(signed_at__isnull=False).order_by("-version").first()
        result.consults.append(consult)
        if signed is not None:
            result.reports.append((consult, signed))
        result.steps.extend(_consult_steps(consult, signed))
    return result


def signed_versions(user, consult: ConsultRequest) -> list[Report]:
    return list(visible_reports(user, consult).filter(signed_at__isnull=False))

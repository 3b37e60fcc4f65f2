"""What the patient portal shows of consults: a plain-language timeline per study, the signed
reports with the patient's questions about them, and when a report waits for release. Patients
never see drafts (``permissions.visible_reports`` gives them signed versions), nor a signed version
before its release time (``release.for_reader``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone

from accounts.timeformat import format_instant
from studies.models import Study

from . import questions, release
from .models import ConsultRequest, PatientQuestion, Report, State
from .permissions import visible_consults, visible_reports
from .transitions import IN_REVIEW_STATES


@dataclass
class Step:
    when: object
    text: str
    done: bool = True


@dataclass
class Result:
    """A consult's newest report the patient may read, their questions about it, and whether an
    update to it waits for release."""

    consult: ConsultRequest
    report: Report
    questions: list[PatientQuestion]
    may_ask: bool
    update_waiting_until: datetime | None = None


@dataclass
class StudyConsults:
    consults: list[ConsultRequest] = field(default_factory=list)
    reports: list[tuple[ConsultRequest, Report]] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)

    @property
    def status(self) -> str:
        """The latest step in words, for the study list."""
        return self.steps[-1].text if self.steps else "Your images are stored."


def reviewing_text(until: datetime, *, update: bool = False) -> str:
    what = "An update to your report" if update else "Your report"
    return f"{what} is being reviewed by your doctor and will be available after {format_instant(until)}."


def _consult_steps(consult: ConsultRequest, signed: Report | None, waiting: datetime | None) -> list[Step]:
    steps = []
    if consult.submitted_at:
        steps.append(Step(consult.submitted_at, "Your images were sent to a specialist for a second opinion."))
    if consult.accepted_at:
        steps.append(Step(consult.accepted_at, "A specialist is reviewing your images."))
    if consult.state == State.INFO_REQUESTED:
        steps.append(Step(timezone.now(), "The specialist asked your doctor for more information."))
    if signed is not None:
        steps.append(Step(signed.release_at or signed.signed_at, "Report ready. You can read it below."))
        if waiting is not None:
            steps.append(Step(None, reviewing_text(waiting, update=True), done=False))
    elif waiting is not None:
        steps.append(Step(None, reviewing_text(waiting), done=False))
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
        readable = release.for_reader(user, visible_reports(user, consult).filter(signed_at__isnull=False))
        signed = readable.order_by("-version").first()
        waiting = release.waiting_until(user, consult)
        result.consults.append(consult)
        if signed is not None:
            result.reports.append((consult, signed))
            result.results.append(
                Result(
                    consult=consult,
                    report=signed,
                    questions=list(questions.visible_questions(user, consult)),
                    may_ask=questions.may_ask(user, consult),
                    update_waiting_until=waiting,
                )
            )
        result.steps.extend(_consult_steps(consult, signed, waiting))
    return result


def signed_versions(user, consult: ConsultRequest) -> list[Report]:
    """The signed versions ``user`` may read now (a patient: the released ones)."""
    return list(release.for_reader(user, visible_reports(user, consult).filter(signed_at__isnull=False)))

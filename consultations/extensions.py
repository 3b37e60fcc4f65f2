"""What consultations adds to the pages of the apps below it, through their registries
(``studies.panels``): registered in ``ConsultationsConfig.ready()``.

- The study page: the study's consults the user may see (state, specialist, due) and "Ask for a
  second opinion".
- The patient page: the consults on this patient's studies the user may see.
- Every list of studies that shows actions (the home page's latest studies, the patient page, the
  upload page's results): "Ask for a second opinion".
- Share links (``studies.sharing.reports``): the study's signed report, for links made with it.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import reverse

from studies import panels, priors
from studies.models import Patient, Study
from studies.sharing.reports import SharedReport, register_report_source

from . import priors as consult_priors
from .models import Report
from .permissions import care_team_ids, is_offer_only, may_request_consult, visible_consults
from .release import released
from .responses import report_pdf_response

ASK_ACTION = "second-opinion"


def ask_for_second_opinion(request: HttpRequest, study: Study) -> panels.StudyAction | None:
    if not may_request_consult(request.user):
        return None
    url = reverse("consultations:new", kwargs={"study_uid": study.study_instance_uid})
    return panels.StudyAction(label="Ask for a second opinion", url=url, primary=True)


def _rows(user, consults) -> list[dict[str, Any]]:
    """Each consult with who has it in words; a specialist who only holds an offer is not told whose
    consult it is or who else it went to."""
    care_team = care_team_ids(user)
    rows = []
    for consult in consults:
        offer_only = is_offer_only(user, consult, care_team=care_team)
        if consult.assignee_id is not None:
            specialist = consult.assignee.display_name
        elif offer_only:
            specialist = "Offered to you"
        elif consult.target_specialist_id is not None:
            specialist = f"Asked of {consult.target_specialist.display_name}"
        elif consult.specialty:
            specialist = f"Not taken yet ({consult.get_specialty_display()})"
        else:
            specialist = "Not taken yet"
        rows.append({"consult": consult, "specialist": specialist, "study": consult.study})
    return rows


def _consults(user):
    return visible_consults(user).select_related("assignee", "target_specialist", "study").order_by("-created_at")


def study_consults_panel(request: HttpRequest, study: Study) -> dict[str, Any] | None:
    """Shown to anyone who sees the study and either has a consult on it or may ask for one (the
    button to ask is the page's header action, ``ask_for_second_opinion``)."""
    user = request.user
    rows = _rows(user, _consults(user).filter(study=study))
    ask = ask_for_second_opinion(request, study)
    if not rows and ask is None:
        return None
    return {"rows": rows, "study": study, "ask": ask}


def patient_consults_panel(request: HttpRequest, patient: Patient) -> dict[str, Any] | None:
    """The consults on the patient's studies this user may see; not shown when there are none."""
    user = request.user
    rows = _rows(user, _consults(user).filter(study__patient=patient)[:50])
    return {"rows": rows} if rows else None


def shared_report(link) -> SharedReport | None:
    """A share link's report: the study's consult whose report was signed last, with the versions of
    it the patient may read now (released), newest first."""
    signed = released(Report.objects.filter(consult__study_id=link.study_id))
    newest = signed.order_by("-signed_at", "-pk").only("consult_id").first()
    if newest is None:
        return None
    versions = released(Report.objects.filter(consult_id=newest.consult_id)).select_related("signed_by", "consult")
    versions = list(versions.order_by("-version"))
    return SharedReport(consult=versions[0].consult, versions=versions)


def shared_report_pdf(report: SharedReport):
    return report_pdf_response(report.consult, list(reversed(report.versions)))


def register() -> None:
    # A share link made with "Include the signed report" carries the study's report.
    register_report_source(shared_report, shared_report_pdf)
    panels.register_study_panel("consultations", "consultations/_study_consults.html", study_consults_panel, order=10)
    panels.register_patient_panel(
        "consultations", "consultations/_patient_consults.html", patient_consults_panel, order=10
    )
    panels.register_study_action(ASK_ACTION, ask_for_second_opinion, order=10)
    # The consult page's "Priors from PACS" pulls studies for the consult's care team.
    priors.register_target("consult", consult_priors.consult_target)

"""The patient's questions on the consult page: the care team's panel of them (also fetched alone,
so the page refreshes it when a question arrives in the room) and answering one. The patient asks
from the portal (``views.portal.ask_question``)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST, require_safe

from teleconsult.errors import on_refusal

from .. import actions, permissions, questions
from ..models import ConsultRequest
from .consult import detail_url

ANCHOR = "#patient-questions"


def _care_team_consult(request: HttpRequest, pk: int) -> ConsultRequest:
    consult = permissions.get_consult_for_user(request.user, pk)
    if not questions.may_answer(request.user, consult):
        raise Http404("No such consult.")
    return consult


@require_safe
@login_required
def patient_questions(request: HttpRequest, pk: int) -> HttpResponse:
    consult = _care_team_consult(request, pk)
    return render(request, "consultations/_patient_questions.html", questions.panel_context(request.user, consult))


@require_POST
@login_required
def answer_question(request: HttpRequest, pk: int, question_pk: int) -> HttpResponse:
    consult = _care_team_consult(request, pk)
    on_refusal(request, detail_url(consult) + ANCHOR)
    actions.answer_question(consult, question_pk, by=request.user, text=request.POST.get("text", ""))
    messages.success(request, "Your answer was sent to the patient; they read it in the portal.")
    return redirect(detail_url(consult) + ANCHOR)

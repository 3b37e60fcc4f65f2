"""A patient's questions about their signed report, and the care team's answers: who may ask and
answer, what a question or an answer may say, and who reads which.

The changes themselves are ``actions.ask_question`` and ``actions.answer_question``: each also
posts to the consult's chat through ``actions.post_message`` (live in the room, and the care team
away from it is notified like for any message), with words that mark where it came from and who
reads it. The patient reads ``PatientQuestion`` rows only, never the chat.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError

from accounts.models import validate_free_text

from .errors import FieldError, IllegalTransitionError, NotAllowedError
from .models import ConsultRequest, PatientQuestion
from .release import released
from .room import may_join

MAX_TEXT = 2000
# Questions waiting for an answer a patient may have on one consult at once.
MAX_OPEN = 5

QUESTION_MARK = "Question from the patient about the report (they read the answer in the portal):"
ANSWER_MARK = "Answer to the patient (visible to the patient):"


class QuestionInputError(FieldError):
    code = "bad_question"
    field = "text"


def clean_text(text: object) -> str:
    """The question's or answer's text, or a refusal naming the problem."""
    if not isinstance(text, str):
        raise QuestionInputError("Write your text as plain words.")
    text = text.strip()
    if not text:
        raise QuestionInputError("Write something first: the text is empty.")
    if len(text) > MAX_TEXT:
        raise QuestionInputError(f"The text is {len(text)} characters long; the limit is {MAX_TEXT:,}.")
    try:
        validate_free_text(text)
    except ValidationError as exc:
        raise QuestionInputError(exc.messages[0]) from None
    return text


def is_consults_patient(user, consult: ConsultRequest) -> bool:
    return user.is_patient and consult.study.patient.account_id == user.pk


def may_ask(user, consult: ConsultRequest) -> bool:
    """The consult's patient, once a signed report is theirs to read."""
    return is_consults_patient(user, consult) and released(consult.reports.all()).exists()


def require_may_ask(user, consult: ConsultRequest) -> None:
    if not is_consults_patient(user, consult):
        raise NotAllowedError("Only the patient asks questions about their report here; the care team uses the chat.")
    if not released(consult.reports.all()).exists():
        raise IllegalTransitionError("You can ask about your report once it is available to you.")
    waiting = PatientQuestion.objects.filter(consult=consult, answered_at=None).count()
    if waiting >= MAX_OPEN:
        raise IllegalTransitionError(
            f"You have {waiting} questions waiting for an answer; ask more once the care team has answered."
        )


def may_answer(user, consult: ConsultRequest) -> bool:
    """The care team (who talk in the consult's room): the requester, colleagues on the consult,
    the specialist who took it, administrators."""
    return not user.is_patient and may_join(user, consult)


def require_may_answer(user, consult: ConsultRequest) -> None:
    if not may_answer(user, consult):
        raise NotAllowedError("Only the consult's care team answers the patient's questions.")


def visible_questions(user, consult: ConsultRequest):
    """The questions ``user`` may read on ``consult`` (they already see the consult): the patient
    their own, the care team all; anyone else none."""
    questions = PatientQuestion.objects.filter(consult=consult).select_related("answered_by", "asked_by")
    if is_consults_patient(user, consult):
        return questions.filter(asked_by=user)
    if may_join(user, consult):
        return questions
    return questions.none()


def question_chat_text(text: str) -> str:
    return f"{QUESTION_MARK}\n{text}"


def answer_chat_text(question: PatientQuestion, text: str) -> str:
    quoted = question.text if len(question.text) <= 120 else question.text[:117] + "..."
    return f"{ANSWER_MARK}\n{text}\n(Re: {quoted})"


def panel_context(user, consult: ConsultRequest) -> dict:
    """What the consult page's panel of the patient's questions shows (for the care team)."""
    return {
        "consult": consult,
        "patient_questions": list(visible_questions(user, consult)),
        "may_answer_patient": may_answer(user, consult),
        "answer_max": MAX_TEXT,
        "answer_mark": ANSWER_MARK,
    }

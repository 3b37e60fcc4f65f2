"""A patient's question about their signed report, and the care team's answer.

The question and the answer also go into the consult's chat (``actions.post_message``), so the
care team sees and is told about them like any message; the patient reads only these rows, never
the chat, so the team's other messages stay theirs.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from .consults import ConsultRequest
from .room import ChatMessage


class PatientQuestion(models.Model):
    consult = models.ForeignKey(ConsultRequest, on_delete=models.CASCADE, related_name="patient_questions")
    asked_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    text = models.TextField()
    asked_at = models.DateTimeField(default=timezone.now)
    message = models.OneToOneField(ChatMessage, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    answer = models.TextField(blank=True)
    answered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    answered_at = models.DateTimeField(null=True, blank=True)
    answer_message = models.OneToOneField(
        ChatMessage, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["asked_at", "pk"]

    def __str__(self) -> str:
        return f"Question {self.pk} on consult {self.consult_id}"

    @property
    def is_answered(self) -> bool:
        return self.answered_at is not None

    def record_answer(self, *, by, text: str, message: ChatMessage | None) -> None:
        """The care team's answer, which the patient reads on the portal (the caller checked who and
        that it is still unanswered, holding the row's lock)."""
        self.answer = text
        self.answered_by = by
        self.answered_at = timezone.now()
        self.answer_message = message
        self.save(update_fields=["answer", "answered_by", "answered_at", "answer_message"])

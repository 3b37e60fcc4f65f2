"""What the consult room keeps: chat messages, read receipts and annotations on the images."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from .consults import ConsultRequest


class ChatMessage(models.Model):
    """A message in a consult's room. ``client_id`` (chosen by the sending client) is stored once
    per author and consult, so a resend after a reconnect is never a duplicate."""

    consult = models.ForeignKey(ConsultRequest, on_delete=models.CASCADE, related_name="messages")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    text = models.TextField()
    client_id = models.CharField(max_length=64, blank=True)
    sent_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["consult", "author", "client_id"],
                condition=~models.Q(client_id=""),
                name="chat_client_id_once",
            )
        ]

    def __str__(self) -> str:
        return f"{self.author}: {self.text[:40]}"


class ChatReadMark(models.Model):
    """How far one user has read a consult's chat (a read receipt)."""

    consult = models.ForeignKey(ConsultRequest, on_delete=models.CASCADE, related_name="read_marks")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    up_to_id = models.BigIntegerField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["consult", "user"], name="one_read_mark_per_user")]

    def __str__(self) -> str:
        return f"{self.user} read consult {self.consult_id} up to {self.up_to_id}"


class Annotation(models.Model):
    """A measurement or mark on one frame of one image of the consult's study.

    The id is chosen by the viewer that drew it, so a save that is sent again after a network
    failure finds the same row. Geometry is in image pixel coordinates; ``values`` holds what the
    viewer computed (length in mm, ellipse statistics in modality units, ...). Each change bumps
    ``version``; an update naming an older version is refused as a conflict.
    """

    class Tool(models.TextChoices):
        LENGTH = "length", "Length"
        ANGLE = "angle", "Angle"
        ELLIPSE = "ellipse", "Ellipse ROI"
        ARROW = "arrow", "Arrow"
        TEXT = "text", "Text label"
        KEY_IMAGE = "key_image", "Key image"

    id = models.UUIDField(primary_key=True)
    consult = models.ForeignKey(ConsultRequest, on_delete=models.CASCADE, related_name="annotations")
    sop_instance_uid = models.CharField("SOPInstanceUID", max_length=64)
    frame = models.PositiveIntegerField(default=1)
    tool = models.CharField(max_length=16, choices=Tool.choices)
    geometry = models.JSONField(default=dict, blank=True)
    values = models.JSONField(default=dict, blank=True)
    label = models.CharField(max_length=500, blank=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    version = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["consult", "sop_instance_uid"])]

    def __str__(self) -> str:
        return f"{self.get_tool_display()} on {self.sop_instance_uid} frame {self.frame}"

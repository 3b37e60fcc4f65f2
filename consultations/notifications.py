"""In-app notifications, pushed live over ``/ws/notifications/`` and, per kind, by email.

Rows are written inside the caller's transaction; the push and the email go out after commit,
so nobody is told about a change that was rolled back.

The patient is told when a signed report is released to them and when their question is answered
(``report_ready``, ``question_answered``): the text says only that something is ready and links to
the portal, since it is also the email's.

Chat messages are different: a message to someone of the care team who is not in the room is one
notification per consult, updated by each further message while it is unread. Still unread after
``TELECONSULT_CHAT_EMAIL_DELAY_MINUTES``, a beat task sends one email for all of a user's unread
consult chats (``emailed_at`` records it, so never a second one for them); reading the room marks
the notification read, and then no email goes out.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from accounts.outbox import send_after_commit
from teleconsult.links import absolute_url
from teleconsult.mail import queue_email

from . import room, versions
from .groups import notifications_group
from .models import (
    EMAIL_KINDS,
    PATIENT_EMAIL_KINDS,
    ChatMessage,
    ChatReadMark,
    ConsultRequest,
    Notification,
    NotificationPreference,
    PatientQuestion,
    Report,
)
from .models.notifications import BATCHED_EMAIL_KINDS


def unread_count(user) -> int:
    return Notification.objects.filter(user=user, read_at__isnull=True).count()


def wants_email(user, kind: str) -> bool:
    if kind not in EMAIL_KINDS or not user.email or not user.is_active:
        return False
    pref = NotificationPreference.objects.filter(user=user, kind=kind).first()
    return pref is None or pref.email


def email_kinds_for(user) -> tuple[str, ...]:
    """The kinds on a user's email settings page: a patient's own, or the care team's."""
    if user.is_patient:
        return PATIENT_EMAIL_KINDS
    return tuple(kind for kind in EMAIL_KINDS if kind != Notification.Kind.QUESTION_ANSWERED)


def set_email_preferences(user, enabled: dict[str, bool], kinds=EMAIL_KINDS) -> None:
    for kind in kinds:
        NotificationPreference.objects.update_or_create(
            user=user, kind=kind, defaults={"email": bool(enabled.get(kind, False))}
        )


def serialize(notification: Notification) -> dict:
    return {
        "id": notification.pk,
        "kind": notification.kind,
        "title": notification.title,
        "body": notification.body,
        "url": notification.url,
        "consult_id": notification.consult_id,
        "created_at": notification.created_at.isoformat(),
        "read": notification.read_at is not None,
    }


def notify(
    users, *, kind: str, consult: ConsultRequest | None, title: str, body: str = "", url: str | None = None
) -> list[Notification]:
    """Tell each distinct user once; push and email after commit. ``url``: where the notification
    leads (the consult's page unless given)."""
    if url is None:
        url = reverse("consultations:detail", args=[consult.pk]) if consult else ""
    seen: set[int] = set()
    created = []
    for user in users:
        if user is None or user.pk in seen or not user.is_active:
            continue
        seen.add(user.pk)
        created.append(
            Notification.objects.create(user=user, kind=kind, consult=consult, title=title, body=body, url=url)
        )
    for notification in created:
        transaction.on_commit(lambda n=notification: deliver(n.pk))
    return created


def deliver(notification_pk: int) -> None:
    """Push to the user's open tabs and queue the email when they want one."""
    from .tasks import send_notification_email

    notification = Notification.objects.select_related("user").filter(pk=notification_pk).first()
    if notification is None:
        return
    push(notification)
    if notification.kind not in BATCHED_EMAIL_KINDS and wants_email(notification.user, notification.kind):
        send_notification_email.delay(notification_pk=notification.pk)


def push(notification: Notification) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    async_to_sync(layer.group_send)(
        notifications_group(notification.user_id),
        {
            "type": "notification.created",
            "notification": serialize(notification),
            "unread": unread_count(notification.user),
        },
    )


def push_unread(user) -> None:
    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(layer.group_send)(
            notifications_group(user.pk), {"type": "notification.unread", "unread": unread_count(user)}
        )


def email_notification(notification: Notification) -> bool:
    """Queue one notification's email, once. The email carries no patient details, only a link;
    the title (which may hold a person's name) is made one line for the subject by teleconsult.mail."""
    if notification.emailed_at is not None:
        return False
    lines = [notification.title, ""]
    if notification.body:
        lines += [notification.body, ""]
    if notification.url:
        lines += [f"Open it in teleconsult: {absolute_url(notification.url)}", ""]
    lines.append(
        f"You get this email because email is on for '{notification.get_kind_display()}'. "
        f"Turn it off under Notifications > Email settings."
    )
    # Marked first, so a second run of the task never queues it twice; the mail task retries it.
    if not Notification.objects.filter(pk=notification.pk, emailed_at=None).update(emailed_at=timezone.now()):
        return False
    queue_email(subject=f"[teleconsult] {notification.title}", body="\n".join(lines), to=[notification.user.email])
    return True


def mark_read(user, ids: list[int] | None = None) -> int:
    qs = Notification.objects.filter(user=user, read_at__isnull=True)
    if ids is not None:
        qs = qs.filter(pk__in=ids)
    count = qs.update(read_at=timezone.now())
    if count:
        transaction.on_commit(lambda: push_unread(user))
    return count


# --- The care team: what an amendment changed ---------------------------------------------------


def _in_words(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def amendment_text(report: Report) -> str:
    """What the referring side is told of a signed amendment: why, and which sections (findings,
    impression, recommendations) changed since the version it amends. Never the patient's: what
    they are told carries no clinical content (``report_ready``)."""
    previous = versions.previous_signed(report)
    lines = [f"Reason: {report.addendum_reason}" if report.addendum_reason else "No reason was given."]
    if previous is not None:
        changed = versions.changed_sections(previous, report)
        if changed:
            lines.append(f"Changed since version {previous.version}: {_in_words(changed)}.")
        else:
            lines.append(f"The findings, impression and recommendations are as in version {previous.version}.")
    return "\n".join(lines)


# --- The patient: their result, and answers to their questions ---------------------------------
# What a patient is told carries no clinical content (no findings, no body part, no reason for an
# addendum): the notification's text is also the email's, and email is not a secure channel. It
# says something is ready and links to the portal's study page, where they read it signed in.


def _portal_study_url(consult: ConsultRequest) -> str:
    return reverse("portal:study", args=[consult.study.study_instance_uid])


def report_ready(report: Report) -> list[Notification]:
    """Tell the consult's patient (when a portal account is linked to the record) that a signed
    version is theirs to read (called when it is released: ``consultations.release``)."""
    consult = report.consult
    account = consult.study.patient.account
    if account is None:
        return []
    if report.is_addendum:
        kind, title = Notification.Kind.ADDENDUM, "An update to your report is ready"
        body = "The specialist added to the report on your imaging study. Sign in to the portal to read it."
    else:
        kind, title = Notification.Kind.REPORT_SIGNED, "Your result is ready"
        body = "A specialist's report on your imaging study is ready. Sign in to the portal to read it."
    return notify([account], kind=kind, consult=consult, title=title, body=body, url=_portal_study_url(consult))


def question_answered(question: PatientQuestion) -> list[Notification]:
    """Tell the patient who asked that the care team answered (the answer itself stays in the portal)."""
    consult = question.consult
    return notify(
        [question.asked_by],
        kind=Notification.Kind.QUESTION_ANSWERED,
        consult=consult,
        title="Your care team answered your question",
        body="There is an answer to your question about your imaging study. Sign in to the portal to read it.",
        url=_portal_study_url(consult) + "#questions",
    )


# --- Chat messages to people away from the room ------------------------------------------------


def message_posted(message: ChatMessage) -> None:
    """After commit, tell the care team members who are not in the room (a task, so the chat's
    own path stays short)."""
    from .tasks import notify_chat_message

    transaction.on_commit(lambda: notify_chat_message.delay(message_pk=message.pk))


def chat_recipients(consult: ConsultRequest) -> list[User]:
    """Who is told about the room's messages: its care team (requester, assignee, colleagues on
    the consult), never someone who only sees the consult page."""
    team = [consult.requester, consult.assignee, *(p.user for p in consult.active_participants())]
    distinct = {user.pk: user for user in team if user is not None and user.is_active}
    return [user for user in distinct.values() if room.may_join(user, consult)]


def notify_chat_message(message_pk: int) -> list[Notification]:
    """One unread "message" notification per consult for each team member not in the room:
    made, or brought up to date, then pushed. Idempotent: it describes what is unread now."""
    message = (
        ChatMessage.objects.select_related("consult__requester", "consult__assignee").filter(pk=message_pk).first()
    )
    if message is None:
        return []
    consult = message.consult
    present = {user["id"] for user in room.presence().users(consult.pk)}
    touched = []
    with transaction.atomic():
        for user in chat_recipients(consult):
            if user.pk == message.author_id or user.pk in present:
                continue
            note = _message_notification(consult, user)
            if note is not None:
                touched.append(note)
    for note in touched:
        transaction.on_commit(lambda n=note: push(n))
    return touched


def _message_notification(consult: ConsultRequest, user: User) -> Notification | None:
    unread = ChatMessage.objects.filter(consult=consult).exclude(author=user).select_related("author")
    mark = ChatReadMark.objects.filter(consult=consult, user=user).values_list("up_to_id", flat=True).first()
    if mark is not None:
        unread = unread.filter(pk__gt=mark)
    count = unread.count()
    if not count:
        return None  # read already (a resend of an old message)
    latest = unread.order_by("-pk").first()
    fields = {
        "title": f"{count} unread message{'s' if count != 1 else ''} in consult #{consult.pk}",
        "body": f"{latest.author.display_name}: {latest.text[:200]}",
        "url": reverse("consultations:detail", args=[consult.pk]),
    }
    pending = Notification.objects.filter(user=user, consult=consult, kind=Notification.Kind.MESSAGE, read_at=None)
    if pending.update(**fields):
        return pending.first()
    try:
        with transaction.atomic():
            return Notification.objects.create(user=user, consult=consult, kind=Notification.Kind.MESSAGE, **fields)
    except IntegrityError:
        # Made meanwhile by the task of another message: one per consult while unread.
        pending.update(**fields)
        return pending.first()


def mark_chat_read(user, consult: ConsultRequest) -> int:
    """The user read the room: its message notification is read (and no email follows)."""
    ids = list(
        Notification.objects.filter(
            user=user, consult=consult, kind=Notification.Kind.MESSAGE, read_at=None
        ).values_list("pk", flat=True)
    )
    return mark_read(user, ids) if ids else 0


def email_unread_messages(now: datetime | None = None) -> int:
    """Beat work: one email per user whose message notifications are unread past the delay, for
    all those consults at once. Returns how many emails were queued."""
    due_before = (now or timezone.now()) - timedelta(minutes=settings.TELECONSULT_CHAT_EMAIL_DELAY_MINUTES)
    users = _due_messages(due_before).values_list("user_id", flat=True).distinct().order_by("user_id")
    return sum(_email_unread_messages_of(user_id, due_before) for user_id in list(users))


def _due_messages(due_before: datetime):
    return Notification.objects.filter(
        kind__in=BATCHED_EMAIL_KINDS, read_at=None, emailed_at=None, created_at__lte=due_before
    )


@transaction.atomic
def _email_unread_messages_of(user_id: int, due_before: datetime) -> int:
    # Locked, so two beat runs at once send one email; rows another run handled meanwhile no
    # longer match (emailed_at is set) once the lock is ours.
    notes = list(_due_messages(due_before).select_for_update().filter(user_id=user_id).order_by("created_at", "pk"))
    if not notes:
        return 0
    user = User.objects.get(pk=user_id)
    consults = ConsultRequest.objects.in_bulk([note.consult_id for note in notes if note.consult_id])
    now = timezone.now()
    items, handled_read = [], []
    for note in notes:
        consult = consults.get(note.consult_id)
        count = room.unread_count(consult, user) if consult is not None and room.may_join(user, consult) else 0
        if count:
            items.append({"consult_id": consult.pk, "count": count, "url": absolute_url(note.url)})
        else:
            handled_read.append(note.pk)  # read another way, or no longer on the consult
    Notification.objects.filter(pk__in=handled_read).update(read_at=now)
    Notification.objects.filter(pk__in=[n.pk for n in notes if n.pk not in handled_read]).update(emailed_at=now)
    if handled_read:
        transaction.on_commit(lambda: push_unread(user))
    if not items or not wants_email(user, Notification.Kind.MESSAGE):
        return 0
    total = sum(item["count"] for item in items)
    subject = (
        f"{total} unread message{'s' if total != 1 else ''} in consult #{items[0]['consult_id']}"
        if len(items) == 1
        else f"{total} unread messages in {len(items)} consults"
    )
    body = render_to_string(
        "consultations/email/unread_messages.txt",
        {
            "user": user,
            "items": items,
            "kind": Notification.Kind.MESSAGE.label,
            "settings_url": absolute_url(reverse("consultations:email-settings")),
        },
    )
    send_after_commit(f"[teleconsult] {subject}", body, [user.email])
    return 1

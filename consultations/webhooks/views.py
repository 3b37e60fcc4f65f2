"""The webhooks pages: practice admins (for their practices) and administrators (global ones and
any practice's) list, create, edit, pause and resume subscriptions, rotate the secret, send a test
event and read the delivery log. Another practice's subscription is a 404, whatever the action.

A new or rotated secret is shown once: kept in the session just long enough for the next page to
show it, then gone. Refusals are flashed on the page the form was on.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from teleconsult.errors import on_refusal

from ..models.webhooks import WebhookEvent
from . import events, log, subscriptions

_SHOW_SECRET = "webhook-secret-{pk}"
GLOBAL = ""


class SubscriptionForm(forms.Form):
    url = forms.CharField(label="Target URL", max_length=2000, help_text="https://, reachable from the internet")
    description = forms.CharField(label="Description", max_length=200, required=False)
    events = forms.MultipleChoiceField(
        label="Events", choices=WebhookEvent.choices, widget=forms.CheckboxSelectMultiple
    )
    include_resource = forms.BooleanField(
        label="Include the consult, report or study (patient information) in each payload", required=False
    )


class NewSubscriptionForm(SubscriptionForm):
    practice = forms.ChoiceField(label="For")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        choices = [(str(p.pk), p.name) for p in subscriptions.practice_choices(user)]
        if user.is_admin:
            choices.insert(0, (GLOBAL, "Every practice (global)"))
        self.fields["practice"].choices = choices


def _manager(request: HttpRequest) -> None:
    if not subscriptions.may_manage_webhooks(request.user):
        raise Http404("No such page.")


def _flash_errors(request: HttpRequest, form: forms.Form) -> None:
    for field, errors in form.errors.items():
        label = form.fields[field].label if field in form.fields else field
        messages.error(request, f"{label}: {' '.join(errors)}")


def _show_secret_once(request: HttpRequest, subscription, secret: str) -> None:
    request.session[_SHOW_SECRET.format(pk=subscription.pk)] = secret


@login_required
@require_safe
def webhook_list(request: HttpRequest) -> HttpResponse:
    _manager(request)
    context = {
        "subscriptions": list(subscriptions.subscriptions_for(request.user)),
        "form": NewSubscriptionForm(user=request.user),
        "pause_after": settings.TELECONSULT_WEBHOOK_PAUSE_AFTER_FAILURES,
    }
    return render(request, "consultations/webhooks/list.html", context)


@login_required
@require_POST
def webhook_create(request: HttpRequest) -> HttpResponse:
    _manager(request)
    on_refusal(request, reverse("consultations:webhooks"))
    form = NewSubscriptionForm(request.POST, user=request.user)
    if not form.is_valid():
        _flash_errors(request, form)
        return redirect("consultations:webhooks")
    data = form.cleaned_data
    subscription = subscriptions.create(
        request.user,
        url=data["url"],
        events=data["events"],
        practice_id=data["practice"] or None,
        include_resource=data["include_resource"],
        description=data["description"],
    )
    _show_secret_once(request, subscription, subscription.secret)
    messages.success(request, f"Webhook to {subscription.url} created.")
    return redirect("consultations:webhook", pk=subscription.pk)


@login_required
@require_safe
def webhook_detail(request: HttpRequest, pk: int) -> HttpResponse:
    subscription = subscriptions.get_subscription_to_manage(request.user, pk)
    form = SubscriptionForm(
        initial={
            "url": subscription.url,
            "description": subscription.description,
            "events": subscription.events,
            "include_resource": subscription.include_resource,
        }
    )
    context = {
        "subscription": subscription,
        "form": form,
        "secret": request.session.pop(_SHOW_SECRET.format(pk=subscription.pk), None),
        "deliveries": list(log.recent(subscription)),
        "log_size": log.KEEP_DELIVERIES,
        "log_days": log.KEEP_DAYS,
    }
    return render(request, "consultations/webhooks/detail.html", context)


@login_required
@require_POST
def webhook_edit(request: HttpRequest, pk: int) -> HttpResponse:
    subscription = subscriptions.get_subscription_to_manage(request.user, pk)
    on_refusal(request, reverse("consultations:webhook", args=[subscription.pk]))
    form = SubscriptionForm(request.POST)
    if not form.is_valid():
        _flash_errors(request, form)
        return redirect("consultations:webhook", pk=subscription.pk)
    subscriptions.update(subscription, **form.cleaned_data)
    messages.success(request, "Webhook saved.")
    return redirect("consultations:webhook", pk=subscription.pk)


@login_required
@require_POST
def webhook_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """pause, resume, rotate (the secret), test (send a test event) or delete."""
    subscription = subscriptions.get_subscription_to_manage(request.user, pk)
    on_refusal(request, reverse("consultations:webhook", args=[subscription.pk]))
    if action == "pause":
        subscriptions.pause(subscription)
        messages.success(request, "Webhook paused: nothing is sent until you resume it.")
    elif action == "resume":
        subscriptions.resume(subscription)
        messages.success(request, "Webhook resumed: events are sent again from now on.")
    elif action == "rotate":
        _show_secret_once(request, subscription, subscriptions.rotate_secret(subscription))
        messages.success(request, "New secret made: the old one no longer signs deliveries.")
    elif action == "test":
        delivery = events.send_test(subscription)
        messages.success(request, f"Test event {delivery.uuid} queued: see the delivery log below.")
    elif action == "delete":
        subscriptions.delete(subscription)
        messages.success(request, "Webhook deleted.")
        return redirect("consultations:webhooks")
    else:
        raise Http404("No such action.")
    return redirect("consultations:webhook", pk=subscription.pk)

"""Notifications: the list, opening one, and which kinds also come by email."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.urls import reverse

from .. import forms, notifications
from ..models import Notification, NotificationPreference


@login_required
def notification_list(request):
    if request.method == "POST":
        notifications.mark_read(request.user)
        return redirect("consultations:notifications")
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET", "POST"])
    items = list(Notification.objects.filter(user=request.user).select_related("consult")[:200])
    return render(
        request,
        "consultations/notifications.html",
        {"items": items, "unread": notifications.unread_count(request.user)},
    )


@login_required
def notification_open(request, pk: int):
    """Mark one notification read and go where it points."""
    item = Notification.objects.filter(user=request.user, pk=pk).first()
    if item is None:
        raise Http404("No such notification.")
    notifications.mark_read(request.user, [item.pk])
    return redirect(item.url or reverse("consultations:notifications"))


@login_required
def email_settings(request):
    current = dict(NotificationPreference.objects.filter(user=request.user).values_list("kind", "email"))
    kinds = notifications.email_kinds_for(request.user)
    form = forms.EmailPreferencesForm(request.POST or None, kinds=kinds, current=current)
    if request.method == "POST" and form.is_valid():
        notifications.set_email_preferences(request.user, form.cleaned_data, kinds=kinds)
        messages.success(request, "Email settings saved.")
        return redirect("consultations:email-settings")
    return render(request, "consultations/email_settings.html", {"form": form})

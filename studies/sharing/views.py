"""What the holder of a share link sees at /s/<token>/: the passcode form when there is one, then
the read-only viewer and, when the sharer allowed it, the download; when the sharer included it,
the signed report (``reports``) and its PDF at /s/<token>/report/pdf/.

Every URL the page and its viewer ask for is under /s/<token>/ (the images through the link's own
DICOMweb root, preloads included), never /dicomweb/, which answers 401 to a holder without an account.

Unknown, expired, revoked and locked links all get the same page and status, so a token cannot
be probed and the page reveals nothing about the study.
"""

from __future__ import annotations

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_safe

from .. import audit
from ..downloads import study_zip_response
from ..models import AccessEvent, ShareLink
from ..viewer import viewer_context
from . import links, reports

UNAVAILABLE_STATUS = 404
BUSY_STATUS = 429  # every try left is being checked by other requests: try again in a moment


class PasscodeForm(forms.Form):
    passcode = forms.CharField(
        max_length=links.MAX_PASSCODE,
        strip=False,
        widget=forms.PasswordInput,
        error_messages={
            "required": "Enter the passcode you were given with the link.",
            "max_length": "A passcode has at most %(limit_value)d characters; this one has %(show_value)d.",
        },
    )


def unavailable(request: HttpRequest) -> HttpResponse:
    return render(request, "sharing/unavailable.html", status=UNAVAILABLE_STATUS)


def _no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "private, no-store"
    response["Referrer-Policy"] = "same-origin"  # the token is in the URL: never sent to other sites
    return response


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def open_link(request: HttpRequest, token: str) -> HttpResponse:
    link = links.usable_link(token)
    if link is None:
        return _no_store(unavailable(request))
    if not links.is_unlocked(request, link):
        return _no_store(passcode_page(request, link, token))
    if request.method == "POST":
        return redirect("sharing:open", token=token)
    audit.record(request, AccessEvent.Action.SHARE_OPEN, link.study, share=link)
    context = viewer_context(None, link.study, read_only=True, dicomweb_root=f"/s/{token}/dicomweb")
    report = reports.shared_report(link)
    if report is not None:
        audit.record(request, AccessEvent.Action.REPORT_VIEW, link.study, report.latest.pk, share=link)
    context.update(link=link, token=token, report=report)
    return _no_store(render(request, "sharing/open.html", context))


def passcode_page(request: HttpRequest, link: ShareLink, token: str) -> HttpResponse:
    form = PasscodeForm(request.POST if request.method == "POST" else None)
    if request.method != "POST":
        return render(request, "sharing/passcode.html", {"form": form, "token": token})
    if not form.is_valid():
        return render(request, "sharing/passcode.html", {"form": form, "token": token}, status=400)
    answer = links.try_passcode(link, form.cleaned_data["passcode"])
    if answer.outcome is links.PasscodeOutcome.RIGHT:
        links.unlock(request, link)
        return redirect("sharing:open", token=token)
    if answer.outcome is links.PasscodeOutcome.CLOSED:
        return unavailable(request)
    if answer.outcome is links.PasscodeOutcome.BUSY:
        form.add_error("passcode", "Other passcodes for this link are being checked right now. Try again in a moment.")
        return render(request, "sharing/passcode.html", {"form": form, "token": token}, status=BUSY_STATUS)
    left = answer.tries_left
    form.add_error(
        "passcode",
        f"That passcode is wrong. {left} more wrong {'try locks' if left == 1 else 'tries lock'} the link.",
    )
    return render(request, "sharing/passcode.html", {"form": form, "token": token}, status=400)


@never_cache
@require_safe
def download(request: HttpRequest, token: str) -> HttpResponse:
    link = links.usable_link(token)
    if link is None or not links.is_unlocked(request, link):
        return _no_store(unavailable(request))
    if not link.allow_download:
        return HttpResponse("Whoever shared this link did not allow downloads.", status=403, content_type="text/plain")
    audit.record(request, AccessEvent.Action.DOWNLOAD, link.study, share=link)
    return study_zip_response(link.study)


@never_cache
@require_safe
def report_pdf(request: HttpRequest, token: str) -> HttpResponse:
    """The shared report as PDF; the same page as any unusable link when the link carries none."""
    link = links.usable_link(token)
    if link is None or not links.is_unlocked(request, link):
        return _no_store(unavailable(request))
    report = reports.shared_report(link)
    if report is None:
        return _no_store(unavailable(request))
    audit.record(request, AccessEvent.Action.REPORT_PDF, link.study, report.latest.pk, share=link)
    return _no_store(reports.report_pdf_response(report))

"""allauth's pages render inside the portal layout with no inline script, under our CSP."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.urls import reverse

from accounts.mfa import has_mfa
from tests.accounts.conftest import totp_code


class ScriptAudit(HTMLParser):
    """Collects inline scripts (executable ones), style attributes and inline event handlers."""

    def __init__(self) -> None:
        super().__init__()
        self.inline_scripts: list[str] = []
        self.style_attributes: list[str] = []
        self.event_handlers: list[str] = []
        self.script_srcs: list[str] = []
        self._open_inline = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        for name in attributes:
            if name.startswith("on"):
                self.event_handlers.append(f"<{tag} {name}>")
        if "style" in attributes:
            self.style_attributes.append(f"<{tag} style={attributes['style']!r}>")
        if tag == "script":
            if attributes.get("src"):
                self.script_srcs.append(attributes["src"])
            elif (attributes.get("type") or "").lower() != "application/json":
                self._open_inline = True
                self.inline_scripts.append("")

    def handle_data(self, data):
        if self._open_inline:
            self.inline_scripts[-1] += data

    def handle_endtag(self, tag):
        if tag == "script":
            self._open_inline = False


def audit(response) -> ScriptAudit:
    parser = ScriptAudit()
    parser.feed(response.content.decode())
    return parser


def assert_clean_page(response) -> ScriptAudit:
    assert response.status_code == 200, (response.status_code, response.get("Location"))
    page = audit(response)
    assert page.inline_scripts == [], "inline <script> on the page"
    assert page.event_handlers == [], "inline event handler on the page"
    assert page.style_attributes == [], "style attribute (blocked by style-src 'self')"
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    html = response.content.decode()
    assert 'class="topbar"' in html, "rendered outside the portal layout"
    return page


ANONYMOUS_PAGES = [
    "account_login",
    "account_signup",
    "account_reset_password",
    "account_reset_password_done",
    "account_email_verification_sent",
]

SIGNED_IN_PAGES = [
    "account_change_password",
    "account_email",
    "account_logout",
    "account_reauthenticate",
    "mfa_index",
    "mfa_activate_totp",
    "mfa_add_webauthn",
    "mfa_list_webauthn",
    "home",
]


@pytest.mark.parametrize("name", ANONYMOUS_PAGES)
def test_anonymous_account_page_has_no_inline_script_and_sends_csp(client, db, name):
    assert_clean_page(client.get(reverse(name)))


@pytest.mark.parametrize("name", SIGNED_IN_PAGES)
def test_signed_in_account_page_has_no_inline_script_and_sends_csp(client, physician, password, name):
    sign_in(client, physician, password)
    assert_clean_page(client.get(reverse(name)))


def sign_in(client, user, password):
    response = client.post(reverse("account_login"), {"login": user.email, "password": password})
    assert response.status_code == 302, response.content[:2000]
    return response


def test_login_page_loads_passkey_script_from_static_files(client, db):
    page = assert_clean_page(client.get(reverse("account_login")))
    assert any(src.endswith("js/mfa-webauthn.js") for src in page.script_srcs)
    html = client.get(reverse("account_login")).content.decode()
    assert 'data-webauthn="login"' in html
    assert 'id="mfa_login"' in html


def test_mfa_authenticate_stage_page_is_clean(client, mfa_physician, password):
    response = sign_in(client, mfa_physician, password)
    assert response["Location"] == reverse("mfa_authenticate")
    response = client.get(reverse("mfa_authenticate"))
    page = assert_clean_page(response)
    # No passkey on this account, so no passkey button or script.
    assert 'data-webauthn="get"' not in response.content.decode()
    assert page.script_srcs == ["/static/js/timezone.js", "/static/js/header.js"]  # only those every page has


def test_mfa_code_completes_sign_in(client, mfa_physician, password):
    sign_in(client, mfa_physician, password)
    response = client.post(reverse("mfa_authenticate"), {"code": totp_code(mfa_physician.totp_secret)})
    assert response.status_code == 302
    assert client.get(reverse("home")).status_code == 200


def test_wrong_mfa_code_is_a_form_error(client, mfa_physician, password):
    sign_in(client, mfa_physician, password)
    response = client.post(reverse("mfa_authenticate"), {"code": "000000"})
    assert response.status_code == 200
    assert b"errorlist" in response.content


def test_reused_mfa_code_is_refused_at_sign_in(client, mfa_physician, password):
    code = totp_code(mfa_physician.totp_secret)
    sign_in(client, mfa_physician, password)
    assert client.post(reverse("mfa_authenticate"), {"code": code}).status_code == 302
    client.logout()
    sign_in(client, mfa_physician, password)
    response = client.post(reverse("mfa_authenticate"), {"code": code})
    assert response.status_code == 200
    assert b"errorlist" in response.content


def test_recovery_codes_page_is_clean_and_uses_static_script(client, mfa_physician, password):
    sign_in(client, mfa_physician, password)
    client.post(reverse("mfa_authenticate"), {"code": totp_code(mfa_physician.totp_secret)})
    client.post(reverse("account_reauthenticate"), {"password": password})
    page = assert_clean_page(client.get(reverse("mfa_view_recovery_codes")))
    assert any(src.endswith("js/mfa-forms.js") for src in page.script_srcs)


def test_totp_deactivate_page_is_clean_after_reauthentication(client, mfa_physician, password):
    sign_in(client, mfa_physician, password)
    client.post(reverse("mfa_authenticate"), {"code": totp_code(mfa_physician.totp_secret)})
    # Removing a factor asks for the password again.
    response = client.get(reverse("mfa_deactivate_totp"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_reauthenticate"))
    client.post(reverse("account_reauthenticate"), {"password": password})
    assert_clean_page(client.get(reverse("mfa_deactivate_totp")))


def test_email_page_confirms_removal_through_static_script(client, physician):
    client.force_login(physician)
    page = assert_clean_page(client.get(reverse("account_email")))
    assert any(src.endswith("js/mfa-forms.js") for src in page.script_srcs)
    assert b"data-confirm=" in client.get(reverse("account_email")).content


def test_webauthn_add_page_passes_options_as_json_data(client, physician, password):
    sign_in(client, physician, password)
    response = client.get(reverse("mfa_add_webauthn"))
    page = assert_clean_page(response)
    html = response.content.decode()
    assert '<script id="js_data" type="application/json">' in html
    assert 'data-webauthn="create"' in html
    assert any(src.endswith("js/mfa-webauthn.js") for src in page.script_srcs)


def test_totp_activation_from_the_page(client, physician, password):
    sign_in(client, physician, password)
    response = client.get(reverse("mfa_activate_totp"))
    assert_clean_page(response)
    secret = response.context["form"].secret
    response = client.post(reverse("mfa_activate_totp"), {"code": totp_code(secret)})
    assert response.status_code == 302
    assert response["Location"] == reverse("mfa_view_recovery_codes")
    assert has_mfa(physician)
    # The new recovery codes are shown at once, without another password prompt.
    codes_page = client.get(reverse("mfa_view_recovery_codes"))
    assert_clean_page(codes_page)
    assert "data-recovery-codes" in codes_page.content.decode()


def test_home_page_says_role_specific_things(client, physician, specialist, patient_user, admin_user):
    expectations = {
        physician: "Second opinions",
        specialist: "Worklist",
        patient_user: "Your images and reports",
        admin_user: "Administration",
    }
    for user, heading in expectations.items():
        client.force_login(user)
        response = client.get(reverse("home"))
        assert heading in response.content.decode()
        assert user.display_name in response.content.decode()


def test_home_lists_the_physicians_latest_studies(client, physician):
    from tests.factories import make_study

    make_study(uploader=physician)
    client.force_login(physician)
    page = client.get(reverse("home")).content.decode()
    assert "Latest studies" in page
    assert "CT head" in page
    assert "No studies yet." not in page


def test_unapproved_specialist_sees_the_approval_notice(client, db):
    from tests.factories import SpecialistFactory

    waiting = SpecialistFactory(email="waiting@example.com", profile__approved_at=None)
    client.force_login(waiting)
    assert "not approved your specialist account yet" in client.get(reverse("home")).content.decode()


def test_home_sends_anonymous_visitors_to_login(client, db):
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


MFA_USER_PAGES = [
    "mfa_index",
    "mfa_deactivate_totp",
    "mfa_view_recovery_codes",
    "mfa_generate_recovery_codes",
    "mfa_list_webauthn",
    "mfa_add_webauthn",
    "mfa_reauthenticate",
    "account_reauthenticate",
    "account_change_password",
]


def test_every_two_factor_page_of_an_mfa_user_is_clean(client, mfa_physician, password):
    sign_in(client, mfa_physician, password)
    client.post(reverse("mfa_authenticate"), {"code": totp_code(mfa_physician.totp_secret)})
    client.post(reverse("account_reauthenticate"), {"password": password})
    for name in MFA_USER_PAGES:
        response = client.get(reverse(name))
        assert response.status_code == 200, (name, response.get("Location"))
        assert_clean_page(response)


def test_password_reset_from_key_page_is_clean(client, physician):
    import re

    from django.core import mail

    client.post(reverse("account_reset_password"), {"email": physician.email})
    link = re.search(r"https?://[^/\s]+(/accounts/password/reset/key/[^\s]+/)", mail.outbox[-1].body).group(1)
    response = client.get(link, follow=True)
    assert_clean_page(response)
    assert b'name="password1"' in response.content


def test_email_confirmation_page_is_clean(client, db):
    import re

    from django.core import mail

    client.post(
        reverse("account_signup"),
        {
            "email": "confirm.me@example.com",
            "name": "Confirm Me",
            "role": "patient",
            "password1": "quiet-harbour-lantern-42",
            "password2": "quiet-harbour-lantern-42",
        },
    )
    link = re.search(r"https?://[^/\s]+(/accounts/confirm-email/[^\s]+/)", mail.outbox[-1].body).group(1)
    assert_clean_page(client.get(link))


def test_the_site_icon_is_found_where_browsers_look_for_it(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 302 and response["Location"].endswith("img/favicon.svg")
    assert client.get(response["Location"]).status_code == 200

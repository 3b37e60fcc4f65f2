"""A person's name is one line of printable text on every way in: sign-up, the Django admin, the
model; names saved before the rule are made one line by the migration."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError
from django.urls import reverse

from accounts.models import User, validate_person_name
from tests.factories import UserFactory

from .test_signup import signup

BAD_NAMES = [
    "Robin\nBcc: victim@example.org",
    "Robin\r\nPatient",
    "Robin\tPatient",
    "Robin\x00",
    "Robin\x1b[31m",
    "Robin\u2028Patient",  # line separator
    "Robin\x85Patient",  # next line (C1)
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_validator_refuses_control_characters_and_names_them(name):
    with pytest.raises(ValidationError) as refused:
        validate_person_name(name)
    assert "control characters" in refused.value.messages[0]
    assert "U+" in refused.value.messages[0]


@pytest.mark.parametrize(
    "name",
    ["Dr Robin O'Brien-Smith", "José Ñúñez", "Zoë d’Arc", "李小龍", "\u200fدكتور سارة\u200f", "Anna Maria  Rossi", ""],
)
def test_validator_keeps_names_of_any_script(name):
    validate_person_name(name)


def test_sign_up_refuses_a_name_with_a_line_break(client, db):
    response = signup(client, name="Robin\nBcc: victim@example.org")
    assert response.status_code == 200
    assert "A name cannot contain line breaks" in response.content.decode()
    assert not User.objects.filter(email="newperson@example.com").exists()


def test_admin_refuses_a_name_with_a_line_break_on_change(client, admin_user, physician):
    client.force_login(admin_user)
    url = reverse("admin:accounts_user_change", args=[physician.pk])
    response = client.post(
        url,
        {
            "email": physician.email,
            "name": "Dr Owner\nBcc: victim@example.org",
            "role": physician.role,
            "is_active": "on",
            "date_joined_0": "2026-01-01",
            "date_joined_1": "10:00:00",
            "physician_profile-TOTAL_FORMS": "0",
            "physician_profile-INITIAL_FORMS": "0",
            "specialist_profile-TOTAL_FORMS": "0",
            "specialist_profile-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    assert "A name cannot contain line breaks" in response.content.decode()
    physician.refresh_from_db()
    assert physician.name == "Dr Owner"


def test_model_full_clean_refuses_a_control_character(db):
    user = User(email="someone@example.com", name="Some\x07one")
    with pytest.raises(ValidationError) as refused:
        user.full_clean(exclude=["password"])
    assert "name" in refused.value.message_dict


def test_migration_makes_names_saved_before_the_rule_one_line(db):
    migration = importlib.import_module("accounts.migrations.0003_user_name_one_line")
    broken = UserFactory(email="broken@example.com", name="Dr\r\n\tBroken\u2028Name ")
    fine = UserFactory(email="fine@example.com", name="Anna  Rossi")

    migration.clean_names(apps, schema_editor=None)

    broken.refresh_from_db()
    fine.refresh_from_db()
    assert broken.name == "Dr Broken Name"
    assert fine.name == "Anna  Rossi"  # double spaces someone typed are theirs

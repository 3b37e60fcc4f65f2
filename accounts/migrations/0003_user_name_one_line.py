"""A display name is one line of printable text: the validator, and existing names made so.

Names saved before the validator may hold a line break or another control character; such a name
in an email subject is a header injection that Django refuses to send. Each run of them becomes one
space (the rest of the name is kept as typed).
"""

import unicodedata

from django.db import migrations, models

import accounts.models

REFUSED = frozenset({"Cc", "Zl", "Zp"})


def one_line(name: str) -> str:
    parts, in_run = [], False
    for ch in name:
        refused = unicodedata.category(ch) in REFUSED
        if not (refused and in_run):
            parts.append(" " if refused else ch)
        in_run = refused
    return "".join(parts).strip()


def clean_names(apps, schema_editor):
    User = apps.get_model("accounts", "User")
    for pk, name in User.objects.exclude(name="").values_list("pk", "name").iterator():
        cleaned = one_line(name)
        if cleaned != name:
            User.objects.filter(pk=pk).update(name=cleaned)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_practices"),
    ]

    operations = [
        migrations.AlterField(
            model_name="user",
            name="name",
            field=models.CharField(
                blank=True,
                max_length=150,
                validators=[accounts.models.validate_person_name],
                verbose_name="display name",
            ),
        ),
        migrations.RunPython(clean_names, migrations.RunPython.noop),
    ]

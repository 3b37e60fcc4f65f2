"""Study.identities: how many patients a study's images name (studies.identity), counted for the
studies stored before it existed, 500 at a time, with the same rule ingest uses from now on."""

from django.db import migrations, models


def count_identities(apps, schema_editor):
    from studies.identity import refresh_all

    refresh_all(study_model=apps.get_model("studies", "Study"), instance_model=apps.get_model("studies", "Instance"))


class Migration(migrations.Migration):
    dependencies = [
        ("studies", "0013_priors_and_results_back"),
    ]

    operations = [
        migrations.AddField(
            model_name="study",
            name="identities",
            field=models.PositiveSmallIntegerField(
                default=1, help_text="How many patients the images name (studies.identity); more than 1 is flagged"
            ),
        ),
        migrations.RunPython(count_identities, migrations.RunPython.noop, elidable=True),
    ]

"""Demo data: one consult on the demo study, submitted and accepted, with a question; and the
standard report templates, should the database have lost them (a flushed test database)."""

from __future__ import annotations

import importlib

from django.apps import apps
from django.db import transaction

from . import actions
from .models import ConsultRequest, State

DEMO_QUESTION = "Demo: is there an acute intracranial haemorrhage or mass effect?"


# The standard templates are data of the migration that ships them: one list, seeded once more here.
TEMPLATES_MIGRATION = "consultations.migrations.0006_report_templates_by_body_part"


def ensure_report_templates() -> None:
    """Create the standard report templates that are missing (migrations made them; a flush of
    the database, as transactional tests do, takes them away). Templates that exist stay as they are."""
    importlib.import_module(TEMPLATES_MIGRATION).seed(apps, None)


@transaction.atomic
def seed_demo_consult(physician, specialist, study):
    """Idempotent: returns the existing demo consult when there is one. Without a study, nothing."""
    ensure_report_templates()
    if study is None:
        return None
    existing = ConsultRequest.objects.filter(study=study, requester=physician, question=DEMO_QUESTION).first()
    if existing is not None:
        return existing
    profile = getattr(specialist, "specialist_profile", None)
    specialty = profile.specialties[0] if profile is not None and profile.specialties else "general_radiology"
    jurisdiction = "US"
    if profile is not None and profile.jurisdictions:
        jurisdiction = profile.jurisdictions[0]
    consult = actions.create_consult(
        by=physician,
        study=study,
        submit=False,
        question=DEMO_QUESTION,
        clinical_history="68-year-old, fall at home this morning, on apixaban. GCS 15.",
        outside_report="No acute intracranial abnormality.",
        priority="urgent",
        specialty=specialty,
        target_specialist=specialist if specialist.may_take_consults else None,
        jurisdiction=jurisdiction,
    )
    actions.submit_consult(consult, by=physician)
    if specialist.may_take_consults:
        consult.refresh_from_db()
        if consult.state == State.SUBMITTED:
            actions.accept_consult(consult, by=specialist)
    return consult

"""Results back to the PACS: when a signed report version is released, its Encapsulated PDF (and,
for the first version of a consult with measurements, the measurement SR) is sent with C-STORE to
the node the study came from, when that node is set to "send results back" (``studies.sending``).

Called by ``release.release`` inside its transaction, after it queued the PDF's filing; the sends
are queued after commit and retried with back-off by ``studies.tasks.send_result`` (a PDF still
being filed when the first try comes is simply tried again). The consult page shows each send's
state (``{% results_sent "consult" consult.pk %}``) with "Send again".
"""

from __future__ import annotations

import logging

from django.db import transaction

from studies import sending
from studies.models import Instance

from . import dicom_export
from .errors import ConsultError
from .models import Report

logger = logging.getLogger(__name__)


def source_of(consult) -> str:
    return f"consult:{consult.pk}"


def after_release(report: Report) -> None:
    """Queue the released version's PDF (and a first version's measurement SR) for its study's node."""
    consult = report.consult
    study_uid = consult.study.study_instance_uid
    node = sending.origin_node(study_uid)
    if node is None:
        return
    _series_uid, sop_uid = dicom_export.report_pdf_uids(report)
    kind = f"Addendum PDF (version {report.version})" if report.is_addendum else "Report PDF"
    sending.queue_send(node, study_uid=study_uid, sop_instance_uid=sop_uid, label=kind, source=source_of(consult))
    if report.version == 1:
        sr_uid = _measurement_sr(consult, report)
        if sr_uid:
            sending.queue_send(
                node, study_uid=study_uid, sop_instance_uid=sr_uid, label="Measurements (SR)", source=source_of(consult)
            )


def _measurement_sr(consult, report: Report) -> str:
    """The SOP Instance UID of the consult's measurement SR: one exported already, else one made
    now when the consult has measurements; "" when there is none."""
    exported = (
        Instance.objects.filter(
            series__study=consult.study, series__description=dicom_export.SR_SERIES_DESCRIPTION, series__modality="SR"
        )
        .order_by("-pk")
        .values_list("sop_instance_uid", flat=True)
        .first()
    )
    if exported:
        return exported
    try:
        with transaction.atomic():
            return dicom_export.export_measurements(consult, by=report.signed_by).sop_instance_uid
    except ConsultError:
        return ""  # no measurements (or none that can be exported): the PDF goes alone
    except Exception:
        # The report is released either way; the SR stays exportable from the consult page.
        logger.exception("The measurement SR of consult %s could not be made for sending back", consult.pk)
        return ""

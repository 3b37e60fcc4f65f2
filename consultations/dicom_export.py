"""A consult's measurements and its signed report as DICOM objects stored in the study.

Measurements become a TID 1500 Imaging Measurement Report (Comprehensive 3D SR, highdicom); the
signed report becomes an Encapsulated PDF. Both are written as a new series of the consult's study
and stored through ``studies.ingest``, so they get their rows, access and DICOMweb routes like any
upload and travel to a PACS with the images they describe.

How the viewer's annotations map onto TID 1500 (one Planar ROI measurement group each, TID 1410):

- length: a POLYLINE region of its 2 points and a Length measurement;
- angle: a POLYLINE region of its 3 points (vertex in the middle) and an Angle measurement in degrees;
- ellipse: an ELLIPSE region (major axis endpoints, then minor axis endpoints, from the bounding
  box the viewer drew) with Area, Mean, Standard Deviation, Minimum and Maximum. Intensities are in
  HU for CT, otherwise in modality units without a unit ("1", UCUM "no units").

Where the image has no pixel spacing the viewer measures in pixels; those values are exported with
the UCUM annotation units ``{pixels}`` (as highdicom's image library uses for rows and columns) and
``{pixels^2}``, so a reader never mistakes them for millimetres. Arrows, text labels and key-image
flags carry no measurement and are not part of the report. Region coordinates are image pixel
coordinates with 0,0 at the top left corner of the top left pixel, as the viewer stores them and as
DICOM SCOORD defines them. Each group's tracking UID is derived from the annotation's id, so
exports made at different times name the same measurement the same way.
"""

from __future__ import annotations

import io
import logging
import uuid
from dataclasses import dataclass

import highdicom as hd
import numpy as np
import pydicom
from django.db.models import Max
from django.urls import reverse
from django.utils import timezone
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from studies import ingest
from studies.lossy import dataset_lossy
from studies.models import Instance, Series

from .errors import ConsultError
from .models import Annotation, ConsultRequest, Report
from .pdf import render_report_pdf

logger = logging.getLogger(__name__)

ENCAPSULATED_PDF_STORAGE = "1.2.840.10008.5.1.4.1.1.104.1"
MANUFACTURER = "teleconsult"
UTF8 = "ISO_IR 192"
SR_SERIES_DESCRIPTION = "Consult measurements"
# A measurement made on pixels that passed through lossy compression says so (no standard concept
# names it in TID 1500: a private coding scheme, per PS3.16 8.2).
MEASURED_ON_LOSSY = hd.sr.CodedConcept("LOSSY-PIXELS", "99TELECONSULT", "Measured on lossy compressed pixels")
PDF_SERIES_DESCRIPTION = "Consult report"
# Exported series are numbered after the study's own, from here up.
FIRST_EXPORT_SERIES_NUMBER = 9000

PIXELS = hd.sr.CodedConcept(value="{pixels}", scheme_designator="UCUM", meaning="Pixels")
SQUARE_PIXELS = hd.sr.CodedConcept(value="{pixels^2}", scheme_designator="UCUM", meaning="Square pixels")

# Viewer unit -> UCUM unit.
UNITS = {
    "mm": codes.UCUM.Millimeter,
    "px": PIXELS,
    "mm²": codes.UCUM.SquareMillimeter,
    "px²": SQUARE_PIXELS,
    "°": codes.UCUM.Degree,
    "HU": codes.UCUM.HounsfieldUnit,
    "": codes.UCUM.NoUnits,
}

# Ellipse statistic in ``values`` -> concept name of its measurement.
ELLIPSE_STATISTICS = {
    "mean": codes.SCT.Mean,
    "sd": codes.SCT.StandardDeviation,
    "min": codes.SCT.Minimum,
    "max": codes.SCT.Maximum,
}

TYPE2_STUDY_KEYWORDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
)

EXPORTED_TOOLS = (Annotation.Tool.LENGTH, Annotation.Tool.ANGLE, Annotation.Tool.ELLIPSE)


class NothingToExportError(ConsultError):
    status = 409
    code = "nothing_to_export"


class ExportFailedError(ConsultError):
    """The object was made but the study would not take it (the reason comes from ingest)."""

    status = 500
    code = "export_failed"


@dataclass(frozen=True)
class StoredObject:
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str

    @property
    def retrieve_url(self) -> str:
        return reverse(
            "dicomweb:instance",
            kwargs={
                "study_uid": self.study_instance_uid,
                "series_uid": self.series_instance_uid,
                "sop_uid": self.sop_instance_uid,
            },
        )


# -- measurements as TID 1500 -------------------------------------------------------------------


def export_measurements(consult: ConsultRequest, *, by) -> StoredObject:
    """Store the consult's measurements as a new SR series in its study and return where it is."""
    consult.require("export-sr", by)
    annotations = list(consult.annotations.filter(tool__in=EXPORTED_TOOLS).order_by("created_at", "id"))
    sources = _source_headers(consult, {a.sop_instance_uid for a in annotations})
    groups = []
    for annotation in annotations:
        source = sources.get(annotation.sop_instance_uid)
        group = _measurement_group(annotation, source) if source is not None else None
        if group is not None:
            groups.append(group)
    if not groups:
        raise NothingToExportError("This consult has no length, angle or ellipse measurements on its images to export.")
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_person_context=_observer(by)),
        procedure_reported=codes.SCT.ImagingProcedure,
        imaging_measurements=groups,
    )
    evidence = [sources[uid] for uid in sorted({a.sop_instance_uid for a in annotations} & set(sources))]
    sr = hd.sr.Comprehensive3DSR(
        evidence=evidence,
        content=report,
        series_instance_uid=generate_uid(),
        series_number=_next_series_number(consult),
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        series_description=SR_SERIES_DESCRIPTION,
        # Labels and names are any text the viewer took; values read from the sources are decoded.
        specific_character_set=UTF8,
    )
    return _store(
        sr, filename=f"consult-{consult.pk}-measurements.dcm", user=by, study_uid=consult.study.study_instance_uid
    )


def _source_headers(consult: ConsultRequest, sop_instance_uids: set[str]) -> dict[str, Dataset]:
    """The headers of the study's instances the annotations are on, read from the stored files."""
    instances = Instance.objects.filter(series__study=consult.study, sop_instance_uid__in=sop_instance_uids)
    headers = {}
    for instance in instances:
        with instance.file.open("rb") as fp:
            header = pydicom.dcmread(fp, stop_before_pixels=True)
        # Many real images leave out type 2 patient and study attributes the SR must carry (empty).
        for keyword in TYPE2_STUDY_KEYWORDS:
            if keyword not in header:
                setattr(header, keyword, None)
        headers[instance.sop_instance_uid] = header
    return headers


def _observer(user) -> hd.sr.ObserverContext:
    # One component (the whole name as family name) with the caret that says so.
    name = (user.display_name or user.email).replace("\\", " ").replace("^", " ")[:63] + "^"
    return hd.sr.ObserverContext(
        observer_type=codes.DCM.Person,
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name=name),
    )


def _points(annotation: Annotation, count: int) -> np.ndarray | None:
    points = (annotation.geometry or {}).get("points") or []
    try:
        array = np.asarray(points, dtype=float)
    except (TypeError, ValueError):
        return None
    if array.shape != (count, 2) or not np.all(np.isfinite(array)):
        return None
    return array


def _number(values: dict, key: str) -> float | None:
    value = values.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        return None
    return float(value)


def _ellipse_axes(corners: np.ndarray) -> np.ndarray | None:
    """Major axis endpoints, then minor axis endpoints, of the ellipse inscribed in the box."""
    (x0, y0), (x1, y1) = corners
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    rx, ry = abs(x1 - x0) / 2, abs(y1 - y0) / 2
    if rx == 0 or ry == 0:
        return None
    horizontal = [[cx - rx, cy], [cx + rx, cy]]
    vertical = [[cx, cy - ry], [cx, cy + ry]]
    return np.array(horizontal + vertical if rx >= ry else vertical + horizontal, dtype=float)


def _measurement(name, value: float | None, unit: str | None):
    if value is None or unit not in UNITS:
        return None
    return hd.sr.Measurement(name=name, value=value, unit=UNITS[unit])


def _measurements(annotation: Annotation) -> tuple[str, np.ndarray | None, list]:
    """The region's graphic type, its points, and the measurements of one annotation."""
    values = annotation.values or {}
    tool = annotation.tool
    if tool == Annotation.Tool.LENGTH:
        found = _measurement(codes.SCT.Length, _number(values, "length"), values.get("unit"))
        return "POLYLINE", _points(annotation, 2), [found]
    if tool == Annotation.Tool.ANGLE:
        found = _measurement(codes.SCT.Angle, _number(values, "angle"), values.get("unit", "°"))
        return "POLYLINE", _points(annotation, 3), [found]
    corners = _points(annotation, 2)
    axes = _ellipse_axes(corners) if corners is not None else None
    found = [_measurement(codes.SCT.Area, _number(values, "area"), values.get("area_unit"))]
    found += [
        _measurement(name, _number(values, key), values.get("unit", "")) for key, name in ELLIPSE_STATISTICS.items()
    ]
    return "ELLIPSE", axes, found


def _measurement_group(annotation: Annotation, source: Dataset):
    graphic_type, points, found = _measurements(annotation)
    measurements = [m for m in found if m is not None]
    if points is None or not measurements:
        logger.info("Annotation %s has no exportable geometry or values; left out of the SR", annotation.pk)
        return None
    frames = [annotation.frame] if int(source.get("NumberOfFrames", 1) or 1) > 1 else None
    region = hd.sr.ImageRegion(
        graphic_type=graphic_type,
        graphic_data=points,
        source_image=hd.sr.SourceImageForRegion.from_source_image(source, referenced_frame_numbers=frames),
    )
    label = annotation.label.strip() or f"{annotation.get_tool_display()} {str(annotation.pk)[:8]}"
    lossy = dataset_lossy(source)
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=f"2.25.{uuid.UUID(str(annotation.pk)).int}", identifier=label[:64]
        ),
        referenced_region=region,
        measurements=measurements,
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(MEASURED_ON_LOSSY, codes.SCT.Yes)] if lossy else None,
    )


# -- signed report as Encapsulated PDF ----------------------------------------------------------

# Patient and study attributes copied from a stored instance of the study into the new object.
STUDY_KEYWORDS = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyDescription",
)


def report_pdf_uids(report: Report) -> tuple[str, str]:
    """Series and SOP Instance UIDs of a signed version's PDF, the same every time it is made."""
    seed = ["teleconsult-report-pdf", str(report.pk), report.content_sha256]
    return generate_uid(entropy_srcs=[*seed, "series"]), generate_uid(entropy_srcs=[*seed, "instance"])


def store_report_pdf(report: Report) -> StoredObject | None:
    """Store a signed report version as an Encapsulated PDF in the study; None if it already is."""
    if not report.is_signed:
        raise NothingToExportError("Only a signed report is stored in the study.")
    consult = report.consult
    series_uid, sop_uid = report_pdf_uids(report)
    if Instance.objects.filter(sop_instance_uid=sop_uid).exists():
        return None
    signed = list(
        consult.reports.filter(signed_at__isnull=False, version__lte=report.version).select_related("signed_by")
    )
    pdf = render_report_pdf(consult, sorted(signed, key=lambda r: -r.version))
    ds = _study_header(consult)
    # DICOM dates carry no zone here: the portal's, whoever stores it (not the reader's zone).
    signed_at = timezone.localtime(report.signed_at, timezone.get_default_timezone())
    ds.SpecificCharacterSet = UTF8
    ds.SOPClassUID = ENCAPSULATED_PDF_STORAGE
    ds.SOPInstanceUID = sop_uid
    ds.SeriesInstanceUID = series_uid
    ds.Modality = "DOC"
    ds.SeriesNumber = _next_series_number(consult)
    ds.SeriesDescription = PDF_SERIES_DESCRIPTION
    ds.InstanceNumber = 1
    ds.Manufacturer = MANUFACTURER
    ds.ConversionType = "WSD"
    ds.ContentDate = signed_at.strftime("%Y%m%d")
    ds.ContentTime = signed_at.strftime("%H%M%S")
    ds.AcquisitionDateTime = signed_at.strftime("%Y%m%d%H%M%S")
    ds.SeriesDate, ds.SeriesTime = ds.ContentDate, ds.ContentTime
    ds.BurnedInAnnotation = "YES"  # the PDF names the patient
    kind = f"Addendum (version {report.version})" if report.is_addendum else "Report"
    ds.DocumentTitle = f"Second-opinion {kind.lower()}, consult {consult.pk}"[:64]
    ds.ConceptNameCodeSequence = []
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = pdf + (b"\x00" if len(pdf) % 2 else b"")
    ds.EncapsulatedDocumentLength = len(pdf)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return _store(
        ds,
        filename=f"consult-{consult.pk}-report-v{report.version}.dcm",
        user=report.signed_by,
        study_uid=consult.study.study_instance_uid,
    )


def _study_header(consult: ConsultRequest) -> Dataset:
    """Patient and study attributes: from a stored instance when there is one, else from the rows."""
    ds = Dataset()
    instance = Instance.objects.filter(series__study=consult.study).order_by("pk").first()
    if instance is not None:
        with instance.file.open("rb") as fp:
            source = pydicom.dcmread(fp, stop_before_pixels=True)
        for keyword in STUDY_KEYWORDS:
            if keyword in source:
                setattr(ds, keyword, source[keyword].value)
    study, patient = consult.study, consult.study.patient
    defaults = {
        "PatientName": patient.name,
        "PatientID": patient.patient_id,
        "PatientBirthDate": patient.birth_date.strftime("%Y%m%d") if patient.birth_date else "",
        "PatientSex": patient.sex,
        "StudyInstanceUID": study.study_instance_uid,
        "StudyDate": study.study_date.strftime("%Y%m%d") if study.study_date else "",
        "StudyTime": study.study_time.strftime("%H%M%S") if study.study_time else "",
        "StudyID": study.study_id,
        "AccessionNumber": study.accession_number,
        "ReferringPhysicianName": study.referring_physician,
        "StudyDescription": study.description,
    }
    for keyword, value in defaults.items():
        if keyword not in ds:
            setattr(ds, keyword, value)
    return ds


# -- storing ------------------------------------------------------------------------------------


def _next_series_number(consult: ConsultRequest) -> int:
    highest = Series.objects.filter(study=consult.study).aggregate(n=Max("series_number"))["n"] or 0
    return max(highest + 1, FIRST_EXPORT_SERIES_NUMBER)


def _store(ds: Dataset, *, filename: str, user, study_uid: str) -> StoredObject:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    # Recorded as the user's upload into the stored study: who may see the export follows who may
    # see the study (a specialist's access ends with the consult).
    result = ingest.ingest_file(buffer, filename=filename, user=user, study_uid=study_uid)
    if result.status not in (ingest.STORED, ingest.ALREADY_STORED):
        logger.error("The study refused the exported %s: %s %s", filename, result.code, result.reason)
        raise ExportFailedError(f"The study did not take the exported object: {result.reason}")
    return StoredObject(
        study_instance_uid=result.study_instance_uid,
        series_instance_uid=result.series_instance_uid,
        sop_instance_uid=result.sop_instance_uid,
        sop_class_uid=result.sop_class_uid,
    )

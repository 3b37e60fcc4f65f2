"""De-identified copies of a study: DICOM PS3.15 Annex E, Basic Application Confidentiality Profile.

The action for each attribute comes from ``BASIC_PROFILE``, derived from PS3.15 Table E.1-1
(basic profile column). Neither pydicom nor highdicom ships that table, and the PyPI packages that
do de-identification apply their own recipes (``deid``: its own recipe format and default list,
plus matplotlib; ``dicognito``: fake names and shifted dates), not the profile's actions, so the
table is kept here where it can be read against the standard and is tested row by row.

Actions: ``X`` remove, ``Z`` empty, ``D`` replace with a dummy value of the same VR, ``U`` replace
the UID. The table's compound actions are resolved to the choice that keeps the object valid
without knowing each IOD's attribute types: anything with ``U`` is ``U``, else anything with ``Z``
is ``Z``, else ``D``. Beyond the table, as the profile requires:

- every UID that is not a registered DICOM UID (so every instance, series, study, frame of
  reference and referenced UID, wherever it is) is replaced, the same original always by the same
  replacement within one copy, so references between the copy's files still hold;
- private attributes, command elements, overlay data and comments and curve data are removed;
- the rules reach into every sequence item;
- PatientIdentityRemoved = YES, DeidentificationMethod and DeidentificationMethodCodeSequence
  (DCM 113100) and LongitudinalTemporalInformationModified = REMOVED are written.

Image pixels are not cleaned: an instance whose BurnedInAnnotation or RecognizableVisualFeatures
is YES, or that encapsulates a document, is flagged and left out of a copy unless the person asking
insists (``include_flagged``).
"""

from __future__ import annotations

import io
import logging
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field

import pydicom
from django.http import StreamingHttpResponse
from django.utils import timezone
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from .downloads import CHUNK, _Sink
from .models import Instance, Study

logger = logging.getLogger(__name__)

PROFILE_CODE = "113100"
PROFILE_MEANING = "Basic Application Confidentiality Profile"
METHOD_TEXT = "Basic Application Confidentiality Profile (PS3.15 Annex E)"

# PS3.15 Table E.1-1, basic profile column, by attribute keyword.
BASIC_PROFILE: dict[str, str] = {
    "AccessionNumber": "Z",
    "AcquisitionComments": "X",
    "AcquisitionContextSequence": "X",
    "AcquisitionDate": "X/Z",
    "AcquisitionDateTime": "X/Z/D",
    "AcquisitionDeviceProcessingDescription": "X/D",
    "AcquisitionProtocolDescription": "X",
    "AcquisitionTime": "X/Z",
    "ActualHumanPerformersSequence": "X",
    "AdditionalPatientHistory": "X",
    "AdmissionID": "X",
    "AdmittingDate": "X",
    "AdmittingDiagnosesCodeSequence": "X",
    "AdmittingDiagnosesDescription": "X",
    "AdmittingTime": "X",
    "AffectedSOPInstanceUID": "X",
    "Allergies": "X",
    "Arbitrary": "X",
    "AuthorObserverSequence": "X",
    "BranchOfService": "X",
    "CassetteID": "X",
    "CommentsOnThePerformedProcedureStep": "X",
    "ConcatenationUID": "U",
    "ConfidentialityConstraintOnPatientDataDescription": "X",
    "ConsultingPhysicianIdentificationSequence": "X",
    "ConsultingPhysicianName": "X",
    "ContentCreatorIdentificationCodeSequence": "X",
    "ContentCreatorName": "Z",
    "ContentDate": "Z/D",
    "ContentSequence": "X",
    "ContentTime": "Z/D",
    "ContextGroupExtensionCreatorUID": "U",
    "ContrastBolusAgent": "Z/D",
    "ContributionDescription": "X",
    "CountryOfResidence": "X",
    "CreatorVersionUID": "U",
    "CurrentPatientLocation": "X",
    "CurveDate": "X",
    "CurveTime": "X",
    "CustodialOrganizationSequence": "X",
    "DataSetTrailingPadding": "X",
    "Date": "X",
    "DateTime": "X",
    "DerivationDescription": "X",
    "DetectorID": "X/D",
    "DeviceSerialNumber": "X/Z/D",
    "DeviceUID": "U",
    "DigitalSignaturesSequence": "X",
    "DimensionOrganizationUID": "U",
    "DischargeDiagnosisDescription": "X",
    "DistributionAddress": "X",
    "DistributionName": "X",
    "DoseReferenceUID": "U",
    "EndAcquisitionDateTime": "X/D",
    "EthnicGroup": "X",
    "FailedSOPInstanceUIDList": "X/Z/U",
    "FiducialUID": "U",
    "FillerOrderNumberImagingServiceRequest": "Z",
    "FrameComments": "X",
    "FrameOfReferenceUID": "U",
    "GantryID": "X/D",
    "GeneratorID": "X/D",
    "GraphicAnnotationSequence": "D",
    "HumanPerformerName": "X",
    "HumanPerformerOrganization": "X",
    "IconImageSequence": "X",
    "IdentifyingComments": "X",
    "ImageComments": "X",
    "InstanceCreationDate": "X/D",
    "InstanceCreationTime": "X/Z/D",
    "InstanceCreatorUID": "U",
    "InstitutionAddress": "X",
    "InstitutionalDepartmentName": "X",
    "InstitutionCodeSequence": "X/Z/D",
    "InstitutionName": "X/Z/D",
    "InsurancePlanIdentification": "X",
    "IntendedRecipientsOfResultsIdentificationSequence": "X",
    "InterpretationApproverSequence": "X",
    "InterpretationAuthor": "X",
    "InterpretationDiagnosisDescription": "X",
    "InterpretationIDIssuer": "X",
    "InterpretationRecorder": "X",
    "InterpretationText": "X",
    "InterpretationTranscriber": "X",
    "IrradiationEventUID": "U",
    "IssuerOfAdmissionID": "X",
    "IssuerOfPatientID": "X",
    "IssuerOfServiceEpisodeID": "X",
    "LargePaletteColorLookupTableUID": "U",
    "LastMenstrualDate": "X",
    "MAC": "X",
    "MedicalAlerts": "X",
    "MedicalRecordLocator": "X",
    "MilitaryRank": "X",
    "ModifiedAttributesSequence": "X",
    "ModifiedImageDescription": "X",
    "ModifyingDeviceID": "X",
    "ModifyingDeviceManufacturer": "X",
    "NameOfPhysiciansReadingStudy": "X",
    "NamesOfIntendedRecipientsOfResults": "X",
    "Occupation": "X",
    "OperatorIdentificationSequence": "X",
    "OperatorsName": "X/Z/D",
    "OrderCallbackPhoneNumber": "X",
    "OrderEnteredBy": "X",
    "OrderEntererLocation": "X",
    "OriginalAttributesSequence": "X",
    "OtherPatientIDs": "X",
    "OtherPatientIDsSequence": "X",
    "OtherPatientNames": "X",
    "OverlayDate": "X",
    "OverlayTime": "X",
    "ParticipantSequence": "X",
    "PatientAddress": "X",
    "PatientAge": "X",
    "PatientBirthDate": "Z",
    "PatientBirthName": "X",
    "PatientBirthTime": "X",
    "PatientComments": "X",
    "PatientID": "Z",
    "PatientInstitutionResidence": "X",
    "PatientInsurancePlanCodeSequence": "X",
    "PatientMotherBirthName": "X",
    "PatientName": "Z",
    "PatientPrimaryLanguageCodeSequence": "X",
    "PatientPrimaryLanguageModifierCodeSequence": "X",
    "PatientReligiousPreference": "X",
    "PatientSex": "Z",
    "PatientSexNeutered": "X/Z",
    "PatientSize": "X",
    "PatientState": "X",
    "PatientTelecomInformation": "X",
    "PatientTelephoneNumbers": "X",
    "PatientTransportArrangements": "X",
    "PatientWeight": "X",
    "PerformedLocation": "X",
    "PerformedProcedureStepDescription": "X",
    "PerformedProcedureStepEndDate": "X",
    "PerformedProcedureStepEndTime": "X",
    "PerformedProcedureStepID": "X",
    "PerformedProcedureStepStartDate": "X",
    "PerformedProcedureStepStartTime": "X",
    "PerformedStationAETitle": "X",
    "PerformedStationGeographicLocationCodeSequence": "X",
    "PerformedStationName": "X",
    "PerformedStationNameCodeSequence": "X",
    "PerformingPhysicianIdentificationSequence": "X",
    "PerformingPhysicianName": "X",
    "PersonAddress": "X",
    "PersonIdentificationCodeSequence": "D",
    "PersonName": "D",
    "PersonTelephoneNumbers": "X",
    "PhysicianApprovingInterpretation": "X",
    "PhysiciansOfRecord": "X",
    "PhysiciansOfRecordIdentificationSequence": "X",
    "PhysiciansReadingStudyIdentificationSequence": "X",
    "PlacerOrderNumberImagingServiceRequest": "Z",
    "PlateID": "X",
    "PregnancyStatus": "X",
    "PreMedication": "X",
    "ProtocolName": "X/D",
    "ReasonForStudy": "X",
    "ReasonForTheImagingServiceRequest": "X",
    "ReferencedDigitalSignatureSequence": "X",
    "ReferencedFrameOfReferenceUID": "U",
    "ReferencedImageSequence": "X/Z/U*",
    "ReferencedPatientAliasSequence": "X",
    "ReferencedPatientSequence": "X",
    "ReferencedPerformedProcedureStepSequence": "X/Z/D",
    "ReferencedSOPInstanceMACSequence": "X",
    "ReferencedSOPInstanceUID": "U",
    "ReferencedSOPInstanceUIDInFile": "U",
    "ReferencedStudySequence": "X/Z",
    "ReferringPhysicianAddress": "X",
    "ReferringPhysicianIdentificationSequence": "X",
    "ReferringPhysicianName": "Z",
    "ReferringPhysicianTelephoneNumbers": "X",
    "RegionOfResidence": "X",
    "RelatedFrameOfReferenceUID": "U",
    "RequestAttributesSequence": "X",
    "RequestedContrastAgent": "X",
    "RequestedProcedureComments": "X",
    "RequestedProcedureDescription": "X/Z",
    "RequestedProcedureID": "X",
    "RequestedProcedureLocation": "X",
    "RequestedSOPInstanceUID": "U",
    "RequestingPhysician": "X",
    "RequestingService": "X",
    "ResponsibleOrganization": "X",
    "ResponsiblePerson": "X",
    "ResultsComments": "X",
    "ResultsDistributionListSequence": "X",
    "ResultsIDIssuer": "X",
    "ReviewerName": "X/Z",
    "ScheduledHumanPerformersSequence": "X",
    "ScheduledPatientInstitutionResidence": "X",
    "ScheduledPerformingPhysicianIdentificationSequence": "X",
    "ScheduledPerformingPhysicianName": "X",
    "ScheduledProcedureStepDescription": "X",
    "ScheduledProcedureStepEndDate": "X",
    "ScheduledProcedureStepEndTime": "X",
    "ScheduledProcedureStepID": "X",
    "ScheduledProcedureStepLocation": "X",
    "ScheduledProcedureStepStartDate": "X",
    "ScheduledProcedureStepStartTime": "X",
    "ScheduledStationAETitle": "X",
    "ScheduledStationGeographicLocationCodeSequence": "X",
    "ScheduledStationName": "X",
    "ScheduledStationNameCodeSequence": "X",
    "ScheduledStudyLocation": "X",
    "ScheduledStudyLocationAETitle": "X",
    "SeriesDate": "X",
    "SeriesDescription": "X",
    "SeriesInstanceUID": "U",
    "SeriesTime": "X",
    "ServiceEpisodeDescription": "X",
    "ServiceEpisodeID": "X",
    "SmokingStatus": "X",
    "SOPInstanceUID": "U",
    "SourceImageSequence": "X/Z/U*",
    "SpecialNeeds": "X",
    "StationName": "X/Z/D",
    "StorageMediaFileSetUID": "U",
    "StudyComments": "X",
    "StudyDate": "Z",
    "StudyDescription": "X",
    "StudyID": "Z",
    "StudyIDIssuer": "X",
    "StudyInstanceUID": "U",
    "StudyTime": "Z",
    "SynchronizationFrameOfReferenceUID": "U",
    "TemplateExtensionCreatorUID": "U",
    "TemplateExtensionOrganizationUID": "U",
    "TextComments": "X",
    "TextString": "X",
    "TextValue": "X",
    "Time": "X",
    "TimezoneOffsetFromUTC": "X",
    "TopicAuthor": "X",
    "TopicKeywords": "X",
    "TopicSubject": "X",
    "TopicTitle": "X",
    "TransactionUID": "U",
    "UID": "U",
    "VerifyingObserverIdentificationCodeSequence": "Z",
    "VerifyingObserverName": "D",
    "VerifyingObserverSequence": "D",
    "VerifyingOrganization": "X",
    "VisitComments": "X",
}

# Repeating groups (the low byte of the group varies): overlay data and comments, curve data.
_OVERLAY_REMOVED = {0x3000, 0x4000}

DUMMY_BY_VR: dict[str, object] = {
    "PN": "ANONYMOUS",
    "LO": "ANONYMOUS",
    "SH": "ANONYMOUS",
    "LT": "ANONYMOUS",
    "ST": "ANONYMOUS",
    "UT": "ANONYMOUS",
    "UC": "ANONYMOUS",
    "CS": "ANONYMOUS",
    "AE": "ANONYMOUS",
    "DA": "19000101",
    "TM": "000000",
    "DT": "19000101000000",
    "AS": "000Y",
    "IS": "0",
    "DS": "0",
}


def resolve(action: str) -> str:
    """One action for a table entry: compound actions as the module docstring says."""
    # "U*": replace the UIDs inside the sequence (the sequence itself is kept).
    choices = {part.rstrip("*") for part in action.split("/")}
    for single in ("U", "Z", "D", "X"):
        if single in choices:
            return single
    raise ValueError(f"Unknown de-identification action {action!r}")


def _tag_actions() -> dict[int, str]:
    from pydicom.datadict import tag_for_keyword

    actions = {}
    for keyword, action in BASIC_PROFILE.items():
        tag = tag_for_keyword(keyword)
        if tag is None:
            raise ValueError(f"{keyword} is not a DICOM keyword")
        actions[tag] = resolve(action)
    return actions


TAG_ACTIONS = _tag_actions()


def is_registered_uid(value: str) -> bool:
    """A UID the standard defines (SOP classes, transfer syntaxes, coding schemes): never replaced."""
    uid = UID(value)
    return uid.name != str(uid)


class UIDMap:
    """Original UID -> replacement, the same for every file of one copy."""

    def __init__(self) -> None:
        self.replacements: dict[str, str] = {}

    def __call__(self, value: str) -> str:
        value = str(value).strip("\0 ")
        if not value or is_registered_uid(value):
            return value
        if value not in self.replacements:
            self.replacements[value] = generate_uid()
        return self.replacements[value]


def _replace_uids(element: DataElement, uids: UIDMap) -> None:
    if element.VM > 1:
        element.value = [uids(v) for v in element.value]
    elif element.value:
        element.value = uids(element.value)


def _dummy(element: DataElement, uids: UIDMap) -> None:
    if element.VR == "UI":
        _replace_uids(element, uids)
    elif element.VR in DUMMY_BY_VR:
        element.value = DUMMY_BY_VR[element.VR]
    elif element.VR in ("US", "SS", "UL", "SL", "FL", "FD", "SV", "UV"):
        element.value = 0
    else:
        element.value = b""


def _is_removed_group(tag) -> bool:
    group, element = tag.group, tag.element
    if group == 0x0000:
        return True  # command elements (Affected/Requested SOP Instance UID) have no place in a file
    if 0x6000 <= group <= 0x60FF and group % 2 == 0 and element in _OVERLAY_REMOVED:
        return True
    return 0x5000 <= group <= 0x50FF and group % 2 == 0  # curves, retired


def clean(ds: Dataset, uids: UIDMap) -> None:
    """Apply the basic profile to ``ds`` in place, sequence items included."""
    for tag in list(ds.keys()):
        element = ds[tag]
        if tag.is_private or _is_removed_group(tag):
            del ds[tag]
            continue
        action = TAG_ACTIONS.get(int(tag))
        if action == "X":
            del ds[tag]
        elif action == "Z":
            element.value = Sequence() if element.VR == "SQ" else None
        elif element.VR == "SQ":
            # A "D" sequence keeps its structure with dummy contents: its items are cleaned too.
            for item in element.value:
                clean(item, uids)
        elif action == "D":
            _dummy(element, uids)
        elif action == "U" or element.VR == "UI":
            _replace_uids(element, uids)


def mark_deidentified(ds: Dataset) -> None:
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = METHOD_TEXT
    code = Dataset()
    code.CodeValue = PROFILE_CODE
    code.CodingSchemeDesignator = "DCM"
    code.CodeMeaning = PROFILE_MEANING
    ds.DeidentificationMethodCodeSequence = Sequence([code])
    ds.LongitudinalTemporalInformationModified = "REMOVED"


def deidentify(ds: Dataset, uids: UIDMap) -> Dataset:
    """``ds`` de-identified in place, with file meta information to match."""
    transfer_syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None) or ExplicitVRLittleEndian
    clean(ds, uids)
    mark_deidentified(ds)
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = transfer_syntax
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    return ds


def flag_reason(ds: Dataset) -> str:
    """Why the pixels or content of ``ds`` may identify the patient, or "" when nothing says so."""
    if str(ds.get("BurnedInAnnotation", "")).upper() == "YES":
        return "BurnedInAnnotation is YES: identifying text may be written into the pixels"
    if str(ds.get("RecognizableVisualFeatures", "")).upper() == "YES":
        return "RecognizableVisualFeatures is YES: the image may show the patient's face or features"
    if "EncapsulatedDocument" in ds:
        return "an encapsulated document, whose content cannot be de-identified"
    return ""


def to_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@dataclass
class CopyReport:
    included: int = 0
    flagged: list[tuple[str, str, bool]] = field(default_factory=list)  # (name, reason, included)
    unreadable: list[str] = field(default_factory=list)


def _instances(study: Study):
    return (
        Instance.objects.filter(series__study=study)
        .select_related("series")
        .defer("metadata")
        .order_by("series__series_number", "series_id", "instance_number", "pk")
    )


def _read(instance: Instance) -> Dataset | None:
    try:
        with instance.file.storage.open(instance.file.name, "rb") as source:
            return pydicom.dcmread(source)
    except (FileNotFoundError, InvalidDicomError):
        return None


def deidentified_files(study: Study, *, include_flagged: bool, report: CopyReport) -> Iterator[tuple[str, bytes]]:
    """(name in the copy, file bytes) for each instance of ``study`` that goes into the copy."""
    uids = UIDMap()
    series_folders: dict[int, str] = {}
    for position, instance in enumerate(_instances(study), start=1):
        folder = series_folders.setdefault(
            instance.series_id, f"series-{len(series_folders) + 1:03d}-{instance.series.modality or 'OT'}"
        )
        name = f"DICOM/{folder}/{position:05d}.dcm"
        ds = _read(instance)
        if ds is None:
            report.unreadable.append(name)
            continue
        reason = flag_reason(ds)
        if reason:
            report.flagged.append((name, reason, include_flagged))
            if not include_flagged:
                continue
        try:
            data = to_bytes(deidentify(ds, uids))
        except Exception:
            # The archive is already streaming: one file pydicom cannot rewrite is left out and
            # listed, rather than cutting the download short.
            logger.exception("Instance %s could not be de-identified", instance.pk)
            report.unreadable.append(name)
            continue
        report.included += 1
        yield name, data


def readme(report: CopyReport, *, include_flagged: bool) -> str:
    made = timezone.now().strftime("%Y-%m-%d %H:%M %Z")
    lines = [
        "De-identified copy",
        "",
        f"Made {made} following the {PROFILE_MEANING} (DICOM PS3.15 Annex E, code DCM {PROFILE_CODE}).",
        "Identifying attributes were removed, emptied or replaced, in sequences too; every UID was replaced",
        "consistently within this copy; private attributes were removed. Pixel data was not changed:",
        "images that do not say they carry burned-in text (BurnedInAnnotation) may still show it, as",
        "screenshots, scanned documents and ultrasound images often do. Look at them before sharing.",
        "",
        f"Files in this copy: {report.included}",
    ]
    if report.flagged:
        lines += ["", "Files that may show identifying information in their pixels or content:"]
        for name, reason, included in report.flagged:
            state = "INCLUDED at the requester's insistence" if included else "left out"
            lines.append(f"- {name}: {reason} ({state})")
        if not include_flagged:
            lines.append("Ask for the copy with include_burned_in=1 to include them; check them before sharing.")
    if report.unreadable:
        lines += [
            "",
            "Files that could not be de-identified and were left out:",
            *(f"- {n}" for n in report.unreadable),
        ]
    return "\n".join(lines) + "\n"


def zip_stream(study: Study, *, include_flagged: bool) -> Iterator[bytes]:
    """The copy as a zip, written as it is produced; README.txt at the end lists what was left out."""
    report = CopyReport()
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, data in deidentified_files(study, include_flagged=include_flagged, report=report):
            with archive.open(name, "w", force_zip64=True) as target:
                for start in range(0, len(data), CHUNK):
                    target.write(data[start : start + CHUNK])
                    yield sink.take()
        archive.writestr("README.txt", readme(report, include_flagged=include_flagged))
    yield sink.take()


def copy_response(study: Study, *, include_flagged: bool) -> StreamingHttpResponse:
    response = StreamingHttpResponse(zip_stream(study, include_flagged=include_flagged), content_type="application/zip")
    response["Content-Disposition"] = 'attachment; filename="deidentified-study.zip"'
    response["Cache-Control"] = "private, no-store"
    return response

"""Photos and documents added to a study from a phone, turned into DICOM instances of that study.

A photo (JPEG, PNG, HEIC/HEIF, WebP: whatever Pillow with pillow-heif opens) becomes a VL
Photographic Image (modality XC): turned upright as its EXIF orientation says, then re-encoded
from its pixels alone, so no EXIF (camera, GPS position, time) reaches the DICOM file. A PDF
becomes an Encapsulated PDF (modality DOC). Both carry the patient and study attributes of the
study, go into one "added from a phone" series per kind, and are stored through
``studies.ingest.ingest_file`` like any upload: rows, access grant, thumbnail, DICOMweb.

highdicom's Secondary Capture requires a coordinate system (patient orientation or a slide)
that a phone photo does not have, so the objects are built with pydicom.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from typing import BinaryIO

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from PIL import Image, ImageOps, UnidentifiedImageError
from pillow_heif import register_heif_opener
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, JPEGBaseline8Bit, generate_uid

from teleconsult.errors import PortalError

from .ingest import STORED, IngestResult, ingest_file
from .models import Instance, Series, Study

logger = logging.getLogger(__name__)

register_heif_opener()

VL_PHOTOGRAPHIC_IMAGE = "1.2.840.10008.5.1.4.1.1.77.1.4"
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"

# Larger pictures are refused before their pixels are decoded (a decompression bomb otherwise).
MAX_PIXELS = 50_000_000
PHOTO_FORMATS = {"JPEG", "MPO", "PNG", "HEIF", "WEBP"}
JPEG_QUALITY = 92


@dataclass(frozen=True)
class Kind:
    modality: str
    series_description: str
    first_series_number: int


PHOTO = Kind("XC", "Photos added from a phone", 9001)
DOCUMENT = Kind("DOC", "Documents added from a phone", 9002)
KINDS = {kind.modality: kind for kind in (PHOTO, DOCUMENT)}


class PhotoRefusedError(PortalError):
    """A file that will not be added: a ``code`` for programs (empty, too_large, not_image,
    unsupported_image, not_pdf, or the ingest's refusal code), the message for people."""


def max_size() -> int:
    return settings.TELECONSULT_MAX_PHOTO_SIZE


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.0f} MB"


def check_size(size: int) -> None:
    if size == 0:
        raise PhotoRefusedError("The file is empty.", code="empty")
    if size > max_size():
        raise PhotoRefusedError(
            f"The file is {_megabytes(size)}, over the limit of {_megabytes(max_size())} for a photo or document.",
            code="too_large",
            status=413,
        )


def _is_pdf(data: bytes) -> bool:
    return data[:1024].lstrip().startswith(b"%PDF-")


def _open_photo(data: bytes) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise PhotoRefusedError(
            "The picture has more pixels than this server accepts.", code="too_large", status=413
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise PhotoRefusedError(
            "This is not a photo we can read: send a JPEG, PNG or HEIC picture, or a PDF.", code="not_image"
        ) from None
    if image.format not in PHOTO_FORMATS:
        raise PhotoRefusedError(
            f"{image.format} pictures are not accepted: send a JPEG, PNG or HEIC picture.", code="unsupported_image"
        )
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise PhotoRefusedError(
            f"The picture is {width} x {height} pixels, more than this server accepts.", code="too_large", status=413
        )
    try:
        image.load()
        upright = ImageOps.exif_transpose(image)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise PhotoRefusedError("The picture is damaged and cannot be read.", code="not_image") from None
    return upright


def _rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent areas become white, as they look on a page.
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def _patient_and_study(ds: Dataset, study: Study) -> None:
    patient = study.patient
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = patient.name
    ds.PatientID = patient.patient_id
    if patient.issuer and not patient.issuer.startswith("teleconsult:"):
        ds.IssuerOfPatientID = patient.issuer
    ds.PatientBirthDate = patient.birth_date.strftime("%Y%m%d") if patient.birth_date else ""
    ds.PatientSex = patient.sex if patient.sex in ("M", "F", "O") else ""
    ds.StudyInstanceUID = study.study_instance_uid
    ds.StudyDate = study.study_date.strftime("%Y%m%d") if study.study_date else ""
    ds.StudyTime = study.study_time.strftime("%H%M%S") if study.study_time else ""
    ds.AccessionNumber = study.accession_number
    ds.StudyID = study.study_id
    ds.ReferringPhysicianName = study.referring_physician
    if study.description:
        ds.StudyDescription = study.description


def _series_for(study: Study, kind: Kind) -> tuple[str, int, int]:
    """(SeriesInstanceUID, SeriesNumber, next InstanceNumber) of the study's series for ``kind``.

    Only right while the study is locked until the instance is stored (``add_to_study``)."""
    series = Series.objects.filter(study=study, modality=kind.modality, description=kind.series_description).first()
    if series is None:
        return generate_uid(), kind.first_series_number, 1
    last = Instance.objects.filter(series=series).aggregate(last=Max("instance_number"))["last"] or 0
    return series.series_instance_uid, series.series_number or kind.first_series_number, last + 1


def _base(study: Study, kind: Kind, sop_class: str, transfer_syntax: str, user) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    _patient_and_study(ds, study)
    # DICOM dates carry no zone here: the portal's, whoever uploads (not the reader's zone).
    now = timezone.localtime(timezone=timezone.get_default_timezone())
    ds.SeriesDescription = kind.series_description
    ds.Modality = kind.modality
    ds.Manufacturer = "teleconsult"
    ds.InstanceCreationDate = ds.ContentDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = ds.ContentTime = now.strftime("%H%M%S")
    ds.AcquisitionDateTime = now.strftime("%Y%m%d%H%M%S")
    ds.OperatorsName = getattr(user, "name", "") or ""
    return ds


def photo_dataset(study: Study, image: Image.Image, *, user) -> Dataset:
    """A VL Photographic Image of ``image`` (already upright) in ``study``, JPEG baseline encoded."""
    rgb = _rgb(image)
    encoded = io.BytesIO()
    # 4:2:2 chroma subsampling matches the YBR_FULL_422 photometric interpretation DICOM requires.
    rgb.save(encoded, format="JPEG", quality=JPEG_QUALITY, subsampling=1)
    ds = _base(study, PHOTO, VL_PHOTOGRAPHIC_IMAGE, JPEGBaseline8Bit, user)
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.Rows, ds.Columns = rgb.height, rgb.width
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "YBR_FULL_422"
    ds.PlanarConfiguration = 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionMethod = "ISO_10918_1"
    ds.AcquisitionContextSequence = Sequence()
    ds.PatientOrientation = ""
    # Nothing tells whether a phone photo shows the patient's face or a name band: treated as if it may.
    ds.RecognizableVisualFeatures = "YES"
    ds.PixelData = encapsulate([encoded.getvalue()])
    ds["PixelData"].VR = "OB"
    return ds


def pdf_dataset(study: Study, data: bytes, *, title: str, user) -> Dataset:
    ds = _base(study, DOCUMENT, ENCAPSULATED_PDF, ExplicitVRLittleEndian, user)
    ds.ConversionType = "WSD"
    ds.BurnedInAnnotation = "YES"
    ds.DocumentTitle = title[:64]
    ds.ConceptNameCodeSequence = Sequence()
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocumentLength = len(data)
    ds.EncapsulatedDocument = data + (b"\0" if len(data) % 2 else b"")
    return ds


def place_in_series(ds: Dataset, study: Study) -> None:
    """Give ``ds`` the series of its kind in ``study`` and the next instance number there."""
    series_uid, series_number, instance_number = _series_for(study, KINDS[ds.Modality])
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.InstanceNumber = instance_number


def _title(filename: str) -> str:
    stem = filename.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0].strip()
    return stem or "Document"


def build_dataset(study: Study, data: bytes, *, filename: str, user) -> Dataset:
    """The photo or PDF as a DICOM object of ``study``, not yet placed in a series."""
    if _is_pdf(data):
        if b"%%EOF" not in data[-4096:]:
            raise PhotoRefusedError("The PDF is incomplete (no end-of-file marker): send it again.", code="not_pdf")
        return pdf_dataset(study, data, title=_title(filename), user=user)
    return photo_dataset(study, _open_photo(data), user=user)


def _encode(ds: Dataset) -> io.BytesIO:
    buffer = io.BytesIO()
    ds.preamble = b"\0" * 128
    ds.save_as(buffer, enforce_file_format=True)
    buffer.seek(0)
    return buffer


def read_upload(upload: BinaryIO, size: int) -> bytes:
    check_size(size)
    upload.seek(0)
    data = upload.read(max_size() + 1)
    check_size(len(data))
    return data


def add_to_study(study: Study, upload: BinaryIO, *, size: int, filename: str, user) -> Instance:
    """Make a DICOM instance of ``study`` from a photo or PDF upload and store it; PhotoRefusedError
    says why when it cannot."""
    data = read_upload(upload, size)
    ds = build_dataset(study, data, filename=filename, user=user)
    # One addition at a time per study, from choosing the series and instance number until the
    # instance is stored: otherwise two simultaneous first photos each start a series of their
    # own, and two simultaneous photos take the same number. The study's row lock is held to the
    # end of this transaction, and ingest_file's rows, written in a savepoint of it, commit with
    # it. SQLite ignores the row lock, but its transactions are serializable: there a simultaneous
    # addition is refused as a conflict, to be sent again, like any simultaneous upload.
    with transaction.atomic():
        locked = Study.objects.select_for_update().get(pk=study.pk)
        place_in_series(ds, locked)
        # Added to the stored study: who may see the photo follows who may see the study.
        result: IngestResult = ingest_file(
            _encode(ds),
            filename=f"{filename or 'upload'}.dcm",
            user=user,
            study_uid=study.study_instance_uid,
        )
    if result.status != STORED or result.instance_id is None:
        logger.warning("A phone %s for study %s was not stored: %s", ds.Modality, study.pk, result.reason)
        raise PhotoRefusedError(result.reason or "The file could not be stored.", code=result.code or "not_stored")
    return Instance.objects.select_related("series__study").get(pk=result.instance_id)


def may_add(user, study: Study) -> bool:
    """The study's own patient, and clinicians who may see it (the caller has checked that)."""
    if user.is_patient:
        return study.patient.account_id == user.pk
    return bool(user.is_physician or user.is_specialist or user.is_admin)

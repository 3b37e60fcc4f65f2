"""The presentation contexts the receiver accepts.

Every storage SOP class pynetdicom knows (``AllStoragePresentationContexts``), each with every
transfer syntax whose pixel data pydicom can read with the codecs installed here (native, deflate,
JPEG, JPEG-LS, JPEG 2000, HTJ2K, RLE): what the portal stores it can render. Syntaxes without a
decoder (MPEG, HEVC, JPIP, ST 2110) are not offered, so a sender converts or reports them.
Study Root and Patient Root C-FIND (``find.py``) with the two native syntaxes: an identifier has
no pixel data.
"""

from __future__ import annotations

from pydicom.pixels import get_decoder
from pydicom.uid import (
    AllTransferSyntaxes,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pynetdicom import AllStoragePresentationContexts
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
    Verification,
)

# Offered first: what every sender has.
_FIRST = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
STUDY_ROOT_FIND = str(StudyRootQueryRetrieveInformationModelFind)
PATIENT_ROOT_FIND = str(PatientRootQueryRetrieveInformationModelFind)


def readable_transfer_syntaxes() -> list[str]:
    """The transfer syntaxes pydicom decodes with the installed plugins, the two native ones first."""
    found = []
    for uid in AllTransferSyntaxes:
        try:
            available = get_decoder(uid).is_available
        except NotImplementedError:
            continue
        if available and uid not in _FIRST:
            found.append(str(uid))
    return [*map(str, _FIRST), *found]


def storage_sop_classes() -> list[str]:
    return [str(context.abstract_syntax) for context in AllStoragePresentationContexts]


def add_supported_contexts(ae) -> None:
    """Offer Verification, C-FIND, and every storage SOP class with every readable transfer syntax."""
    syntaxes = readable_transfer_syntaxes()
    ae.add_supported_context(Verification, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    for find_model in (STUDY_ROOT_FIND, PATIENT_ROOT_FIND):
        ae.add_supported_context(find_model, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    for sop_class in storage_sop_classes():
        ae.add_supported_context(sop_class, syntaxes)

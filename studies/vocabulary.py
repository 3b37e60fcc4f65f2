"""Words for people: what a study holds and which part of the body, named as people say them
rather than as DICOM codes them (``MR`` is "MRI", ``DOC`` a "Document (PDF)", ``XC`` a "Photo").

One vocabulary for every page, report and PDF a person reads; the codes stay where software
reads them (DICOMweb, the API, CSV exports). An unknown code is shown as it is.
"""

from __future__ import annotations

from collections.abc import Iterable

# DICOM PS3.3 C.7.3.1.1.1 Modality defined terms, the ones a consult portal meets.
MODALITY_WORDS = {
    "CT": "CT",
    "MR": "MRI",
    "CR": "X-ray",
    "DX": "X-ray",
    "DR": "X-ray",
    "US": "Ultrasound",
    "MG": "Mammography",
    "PT": "PET",
    "NM": "Nuclear medicine",
    "XA": "Angiography",
    "RF": "Fluoroscopy",
    "IO": "Dental X-ray",
    "PX": "Panoramic dental X-ray",
    "XC": "Photo",
    "GM": "Photo",
    "OP": "Eye photo",
    "OPT": "Eye scan (OCT)",
    "ES": "Endoscopy",
    "SM": "Microscope slide",
    "ECG": "ECG",
    "DOC": "Document (PDF)",
    "SR": "Structured report",
    "KO": "Key images",
    "PR": "Display settings",
    "SEG": "Segmentation",
    "RTPLAN": "Radiotherapy plan",
    "RTSTRUCT": "Radiotherapy structures",
    "RTDOSE": "Radiotherapy dose",
    "RTIMAGE": "Radiotherapy image",
    "OT": "Other",
}

# DICOM PS3.16 Annex L BodyPartExamined defined terms, the common ones.
BODY_PART_WORDS = {
    "ABDOMEN": "Abdomen",
    "ABDOMENPELVIS": "Abdomen and pelvis",
    "ANKLE": "Ankle",
    "ARM": "Arm",
    "BRAIN": "Brain",
    "BREAST": "Breast",
    "CHEST": "Chest",
    "CHESTABDOMEN": "Chest and abdomen",
    "CHESTABDPELVIS": "Chest, abdomen and pelvis",
    "CSPINE": "Neck (cervical spine)",
    "ELBOW": "Elbow",
    "EXTREMITY": "Limb",
    "FOOT": "Foot",
    "HAND": "Hand",
    "HEAD": "Head",
    "HEADNECK": "Head and neck",
    "HEART": "Heart",
    "HIP": "Hip",
    "JAW": "Jaw",
    "KIDNEY": "Kidney",
    "KNEE": "Knee",
    "LEG": "Leg",
    "LIVER": "Liver",
    "LSPINE": "Lower back (lumbar spine)",
    "NECK": "Neck",
    "PELVIS": "Pelvis",
    "PROSTATE": "Prostate",
    "SHOULDER": "Shoulder",
    "SKULL": "Skull",
    "SPINE": "Spine",
    "TSPINE": "Upper back (thoracic spine)",
    "WHOLEBODY": "Whole body",
    "WRIST": "Wrist",
}


def _word(words: dict[str, str], code: str) -> str:
    code = (code or "").strip()
    return words.get(code.upper().replace(" ", ""), code)


def modality_in_words(code: str) -> str:
    """ "MRI" for MR; an unknown code as it is."""
    return _word(MODALITY_WORDS, code)


def body_part_in_words(code: str) -> str:
    """ "Chest, abdomen and pelvis" for CHESTABDPELVIS; an unknown term as it is."""
    return _word(BODY_PART_WORDS, code)


def _in_words(in_words, codes: Iterable[str] | str) -> str:
    if isinstance(codes, str):
        codes = codes.split("\\")
    words: list[str] = []
    for code in codes:
        word = in_words(code)
        if word and word not in words:
            words.append(word)
    return ", ".join(words)


def modalities_in_words(codes: Iterable[str] | str) -> str:
    """ "CT, Document (PDF)" for CT\\DOC (a list of codes, or one backslash-separated value):
    each once, in words."""
    return _in_words(modality_in_words, codes)


def body_parts_in_words(codes: Iterable[str] | str) -> str:
    """ "Chest, Abdomen" for CHEST\\ABDOMEN: each once, in words."""
    return _in_words(body_part_in_words, codes)

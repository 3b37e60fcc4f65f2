"""Whether an image's pixels passed through lossy compression, and how (PS3.3 C.7.6.1.1.5 Lossy
Image Compression; PS3.5 Annex A transfer syntaxes).

A stored lossy transfer syntax, or a header that says LossyImageCompression "01" (an image
decompressed and stored again), makes the pixels lossy; JPEG 2000, HTJ2K and JPEG XL may be either,
and count as lossy unless the header says "00". The viewer holds the same tables
(static/js/viewer/lossy.js; tests/studies/test_lossy.py checks that they agree) to mark the
pixels it shows; the report's measurement lines and the SR export read them from here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# Transfer syntaxes that are always lossy.
LOSSY_SYNTAXES = {
    "1.2.840.10008.1.2.4.50": "JPEG",
    "1.2.840.10008.1.2.4.51": "JPEG",
    "1.2.840.10008.1.2.4.81": "JPEG-LS near-lossless",
    "1.2.840.10008.1.2.4.100": "MPEG-2",
    "1.2.840.10008.1.2.4.100.1": "MPEG-2",
    "1.2.840.10008.1.2.4.101": "MPEG-2",
    "1.2.840.10008.1.2.4.101.1": "MPEG-2",
    "1.2.840.10008.1.2.4.102": "H.264",
    "1.2.840.10008.1.2.4.102.1": "H.264",
    "1.2.840.10008.1.2.4.103": "H.264",
    "1.2.840.10008.1.2.4.103.1": "H.264",
    "1.2.840.10008.1.2.4.104": "H.264",
    "1.2.840.10008.1.2.4.104.1": "H.264",
    "1.2.840.10008.1.2.4.105": "H.264",
    "1.2.840.10008.1.2.4.105.1": "H.264",
    "1.2.840.10008.1.2.4.106": "H.264",
    "1.2.840.10008.1.2.4.106.1": "H.264",
    "1.2.840.10008.1.2.4.107": "HEVC",
    "1.2.840.10008.1.2.4.108": "HEVC",
    "1.2.840.10008.1.2.4.111": "JPEG",
}

# Transfer syntaxes that may be lossy or lossless: lossy unless the header says "00".
MAYBE_LOSSY_SYNTAXES = {
    "1.2.840.10008.1.2.4.91": "JPEG 2000",
    "1.2.840.10008.1.2.4.93": "JPEG 2000",
    "1.2.840.10008.1.2.4.203": "HTJ2K",
    "1.2.840.10008.1.2.4.112": "JPEG XL",
}

# LossyImageCompressionMethod (0028,2114) defined terms in words.
METHODS = {
    "ISO_10918_1": "JPEG",
    "ISO_14495_1": "JPEG-LS near-lossless",
    "ISO_15444_1": "JPEG 2000",
    "ISO_15444_15": "HTJ2K",
    "ISO_13818_2": "MPEG-2",
    "ISO_14496_10": "H.264",
    "ISO_23008_2": "HEVC",
    "ISO_18181_1": "JPEG XL",
}

TAGS = {"flag": "00282110", "ratio": "00282112", "method": "00282114"}


@dataclass(frozen=True)
class Lossy:
    method: str
    ratio: str

    @property
    def text(self) -> str:
        """ "LOSSY · JPEG 2000 · 12:1", as the viewer shows it."""
        return " · ".join(part for part in ("LOSSY", self.method, self.ratio) if part)

    @property
    def words(self) -> str:
        """ "lossy JPEG 2000, 12:1", for a sentence."""
        detail = ", ".join(part for part in (self.method, self.ratio) if part)
        return f"lossy {detail}" if detail else "lossy"


def _ratio(ratios: Iterable) -> str:
    numbers = []
    for value in ratios or ():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if number > 0:
            numbers.append(number)
    if not numbers:
        return ""
    overall = 1.0
    for number in numbers:  # successive compressions: the overall ratio is their product
        overall *= number
    shown = round(overall) if overall >= 10 else round(overall * 10) / 10
    return f"{shown:g}:1"


def lossy_compression(
    transfer_syntax: str, flag: str = "", methods: Iterable = (), ratios: Iterable = ()
) -> Lossy | None:
    """None when the pixels are lossless as far as the transfer syntax and the header tell."""
    syntax = str(transfer_syntax or "").strip()
    said = str(flag or "").strip()
    lossy = said == "01" or syntax in LOSSY_SYNTAXES or (syntax in MAYBE_LOSSY_SYNTAXES and said != "00")
    if not lossy:
        return None
    named = list(dict.fromkeys(METHODS.get(str(m).strip(), str(m).strip()) for m in methods or () if str(m).strip()))
    method = " + ".join(named) or LOSSY_SYNTAXES.get(syntax) or MAYBE_LOSSY_SYNTAXES.get(syntax, "")
    return Lossy(method=method, ratio=_ratio(ratios))


def _json_values(metadata: dict, tag: str) -> list:
    element = (metadata or {}).get(tag) or {}
    return list(element.get("Value") or [])


def instance_lossy(instance) -> Lossy | None:
    """An stored instance's pixels: its transfer syntax and its header (DICOM JSON metadata)."""
    metadata = instance.metadata or {}
    flag = (_json_values(metadata, TAGS["flag"]) or [""])[0]
    return lossy_compression(
        instance.transfer_syntax_uid,
        flag,
        _json_values(metadata, TAGS["method"]),
        _json_values(metadata, TAGS["ratio"]),
    )


def dataset_lossy(ds) -> Lossy | None:
    """A pydicom dataset's pixels (its file meta's transfer syntax and its header)."""
    meta = getattr(ds, "file_meta", None)
    syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    methods = ds.get("LossyImageCompressionMethod", [])
    ratios = ds.get("LossyImageCompressionRatio", [])
    return lossy_compression(
        syntax,
        str(ds.get("LossyImageCompression", "") or ""),
        [methods] if isinstance(methods, str) else list(methods),
        [ratios] if isinstance(ratios, (str, int, float)) else list(ratios),
    )

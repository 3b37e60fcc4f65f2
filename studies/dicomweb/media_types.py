"""Media types and content negotiation (PS3.18 8.7): Accept headers, and the transfer syntaxes
instances and frames travel in."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

DICOM_JSON = "application/dicom+json"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
# Stored encodings whose pixel bytes are already the native little-endian layout.
NATIVE_LITTLE_ENDIAN = {IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN}
# Stored encodings without compressed frames: their frames always travel as native little endian.
NOT_ENCAPSULATED = NATIVE_LITTLE_ENDIAN | {"1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"}
# Media type of a frame kept in its stored (compressed) encoding, as PS3.18 Table 8.7.3-2 names it.
FRAME_MEDIA_TYPES = {
    "1.2.840.10008.1.2.5": "image/dicom-rle",
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
}


# Names older clients (and older editions of PS3.18) use for the frame media types above.
FRAME_MEDIA_ALIASES = {"image/x-dicom-rle": "image/dicom-rle", "image/x-jls": "image/jls", "image/x-jp2": "image/jp2"}
# The transfer syntax a frame media type stands for when the client names none (PS3.18 Table 8.7.3-5).
DEFAULT_FRAME_SYNTAX = {
    "image/dicom-rle": "1.2.840.10008.1.2.5",
    "image/jpeg": "1.2.840.10008.1.2.4.50",
    "image/jls": "1.2.840.10008.1.2.4.80",
    "image/jp2": "1.2.840.10008.1.2.4.90",
    "image/jpx": "1.2.840.10008.1.2.4.92",
    "image/jphc": "1.2.840.10008.1.2.4.201",
}


def split_outside_quotes(text: str, separator: str) -> list[str]:
    items, current, quoted = [], [], False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    items.append("".join(current))
    return [item.strip() for item in items if item.strip()]


def parse_media_type(value: str) -> tuple[str, dict[str, str]]:
    """``type/subtype; a=b; c="d"`` as the lower-cased type and its parameters (names lower-cased)."""
    pieces = split_outside_quotes(value, ";")
    if not pieces:
        return "", {}
    params = {}
    for piece in pieces[1:]:
        name, _, param = piece.partition("=")
        params[name.strip().lower()] = param.strip().strip('"')
    return pieces[0].lower(), params


@dataclass(frozen=True)
class MediaRange:
    type: str
    params: dict[str, str]
    q: float

    @property
    def part_type(self) -> str:
        """The media type a multipart range asks for in its ``type`` parameter (else the type itself)."""
        if self.type.startswith("multipart/"):
            return self.params.get("type", "*/*").lower()
        return self.type

    @property
    def transfer_syntax(self) -> str | None:
        return self.params.get("transfer-syntax")


def parse_accept(header: str | None) -> list[MediaRange]:
    """The Accept header's media ranges, best first; ``q=0`` ranges are dropped."""
    ranges = []
    for item in split_outside_quotes(header or "", ","):
        media_type, params = parse_media_type(item)
        try:
            q = float(params.pop("q", "1"))
        except ValueError:
            q = 1.0
        if media_type and q > 0:
            ranges.append(MediaRange(media_type, params, q))
    return sorted(ranges, key=lambda r: -r.q)


def type_matches(pattern: str, media_type: str) -> bool:
    if pattern in ("*", "*/*"):
        return True
    main, _, sub = pattern.partition("/")
    want_main, _, want_sub = media_type.partition("/")
    return main == want_main and sub in ("*", want_sub)


def same_encoding(requested: str | None, stored: str) -> bool:
    """Whether a requested transfer syntax is satisfied by the stored one without transcoding."""
    if requested in (None, "", "*") or requested == stored:
        return True
    return requested in NATIVE_LITTLE_ENDIAN and stored in NATIVE_LITTLE_ENDIAN


@dataclass(frozen=True)
class DicomOffer:
    """One way the client takes instances: the transfer syntax it names (``None``: the default,
    Explicit VR Little Endian; ``"*"``: as stored), and whether it asked for a single part."""

    transfer_syntax: str | None
    single_part: bool


def dicom_offers(ranges: list[MediaRange]) -> list[DicomOffer]:
    """The Accept header's ways of taking instances, best first (PS3.18 8.7.3.5); no header takes
    the default."""
    if not ranges:
        return [DicomOffer(None, single_part=False)]
    offers = []
    for media_range in ranges:
        if media_range.type == "application/dicom":
            offers.append(DicomOffer(media_range.transfer_syntax, single_part=True))
        elif media_range.type in ("*/*", "multipart/*", "multipart/related") and type_matches(
            media_range.part_type, "application/dicom"
        ):
            offers.append(DicomOffer(media_range.transfer_syntax, single_part=False))
    return offers


def accepts_dicom(ranges: list[MediaRange], stored_syntaxes: Iterable[str]) -> bool:
    """Whether instances in their stored encodings suit an Accept header (absent accepts anything)."""
    if not ranges:
        return True
    stored = set(stored_syntaxes)
    for media_range in ranges:
        if media_range.type not in ("*/*", "multipart/*", "multipart/related", "application/dicom"):
            continue
        if not type_matches(media_range.part_type, "application/dicom"):
            continue
        if all(same_encoding(media_range.transfer_syntax, ts) for ts in stored):
            return True
    return False


def accepts_any(ranges: list[MediaRange], *media_types: str) -> str | None:
    """The first of ``media_types`` the Accept header allows, or ``None``; no header allows the first."""
    if not ranges:
        return media_types[0]
    for media_range in ranges:
        for media_type in media_types:
            if type_matches(media_range.type, media_type):
                return media_type
    return None


@dataclass(frozen=True)
class FrameEncoding:
    """How frames travel: their part media type, and whether they keep the stored encoding."""

    media_type: str
    transfer_syntax: str
    keep_stored: bool

    @property
    def part_content_type(self) -> str:
        return f"{self.media_type}; transfer-syntax={self.transfer_syntax}"


def frame_encoding(ranges: list[MediaRange], stored: str, encodable: Iterable[str] = ()) -> FrameEncoding | None:
    """Pick native bytes, the stored encoding, or one of ``encodable`` (syntaxes frames can be
    encoded in here) from the Accept header (PS3.18 8.7.3.5). ``keep_stored`` false with a
    compressed ``transfer_syntax`` means the frames are encoded in it."""
    native = FrameEncoding("application/octet-stream", EXPLICIT_VR_LITTLE_ENDIAN, keep_stored=False)
    if not ranges:
        return native
    compressed = stored not in NOT_ENCAPSULATED
    encodable = [ts for ts in encodable if ts != stored]
    for media_range in ranges:
        generic = media_range.type in ("*/*", "multipart/*", "multipart/related", "application/octet-stream")
        if not generic and not media_range.type.startswith(("image/", "video/")):
            continue
        part_type, requested = media_range.part_type, media_range.transfer_syntax
        if type_matches(part_type, "application/octet-stream"):
            if not compressed and (stored not in NATIVE_LITTLE_ENDIAN or same_encoding(requested, stored)):
                return native
            if compressed and requested in ("*", stored):
                return FrameEncoding("application/octet-stream", stored, keep_stored=True)
            if compressed and requested in (None, EXPLICIT_VR_LITTLE_ENDIAN):
                return native
            if requested in encodable:
                return FrameEncoding("application/octet-stream", requested, keep_stored=False)
        if part_type == "*/*" or part_type.endswith("/*"):
            # A wildcard image type takes the stored encoding; encoding is done only when named.
            stored_type = FRAME_MEDIA_TYPES.get(stored)
            if (
                compressed
                and stored_type
                and part_type != "*/*"
                and type_matches(part_type, stored_type)
                and requested in (None, "*", stored)
            ):
                return FrameEncoding(stored_type, stored, keep_stored=True)
            continue
        named = FRAME_MEDIA_ALIASES.get(part_type, part_type)
        if compressed and FRAME_MEDIA_TYPES.get(stored) == named and requested in (None, "*", stored):
            return FrameEncoding(part_type, stored, keep_stored=True)
        wanted = DEFAULT_FRAME_SYNTAX.get(named) if requested in (None, "*") else requested
        if wanted in encodable and FRAME_MEDIA_TYPES.get(wanted) == named:
            return FrameEncoding(part_type, wanted, keep_stored=False)
    return None

"""Turn one frame of a DICOM object into an 8-bit picture: thumbnails, WADO-RS ``rendered``.

The pipeline follows PS3.4 Annex N (grayscale) and PS3.3 C.7.6.3 (colour): stored values -> Modality
LUT or rescale -> VOI LUT or window -> presentation (MONOCHROME1 and INVERSE are inverted);
palette colour goes through its LUTs, YBR becomes RGB. Decoding reads one frame at a time from
a path or file object, so a 1 GB multi-frame object never sits whole in memory.

- ``pixels``: the header without its pixel data, and pydicom's decoders;
- ``frames``: one frame decoded (JPEG 2000 at a reduced resolution for small viewports);
- ``repair``: frames the decoders refuse, decoded after repairing the file's defects;
- ``windowing``: grayscale values to 0..1 (Modality LUT, VOI LUT or window);
- ``colour``: palette and true colour to 8-bit RGB;
- ``picture``: the frame as an "L" or "RGB" image fitted to a viewport;
- ``encode``: the image as JPEG or PNG bytes;
- ``thumbnails``: the one thumbnail maker, and the stored thumbnail of an instance.
"""

from .encode import encode
from .errors import NotAnImage, RenderError
from .frames import MAX_FRAME_PIXELS, load_frame
from .picture import fit_within, render_frame
from .pixels import has_pixels, is_decoder_panic, middle_frame, number_of_frames, read_header
from .thumbnails import (
    THUMBNAIL_QUALITY,
    THUMBNAIL_SIZE,
    THUMBNAIL_VIEWPORT,
    make_thumbnail,
    render_thumbnail,
    stored_thumbnail,
    thumbnail_name,
)
from .windowing import Window

__all__ = [
    "MAX_FRAME_PIXELS",
    "THUMBNAIL_QUALITY",
    "THUMBNAIL_SIZE",
    "THUMBNAIL_VIEWPORT",
    "NotAnImage",
    "RenderError",
    "Window",
    "encode",
    "fit_within",
    "has_pixels",
    "is_decoder_panic",
    "load_frame",
    "make_thumbnail",
    "middle_frame",
    "number_of_frames",
    "read_header",
    "render_frame",
    "render_thumbnail",
    "stored_thumbnail",
    "thumbnail_name",
]

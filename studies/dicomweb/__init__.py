"""DICOMweb (PS3.18) for /dicomweb/, one protocol concern per module:

- ``qido``: QIDO-RS search (query parameters, matching, answers), with ``attributes`` for the
  DICOM JSON of studies, series and instances;
- ``wado``: WADO-RS retrieve (metadata, frames, bulk data, rendered parameters);
- ``stow``: STOW-RS store (request checks, the response dataset), with ``stow_body`` splitting
  STOW-RS bodies in front of Django (ASGI);
- ``multipart``: multipart/related written and read;
- ``media_types``: Accept headers and transfer syntaxes;
- ``errors``: ``DicomwebError`` and the one place errors are answered;
- ``views`` and ``urls``: the routes.

The protocol modules need no request, so each can be tested alone; the views check access and
shape answers. This package imports no view: ``studies.dicomweb.views`` loads with the URLs.
"""

from .attributes import attr
from .errors import DicomwebError, error_response, exception_response
from .media_types import DICOM_JSON, parse_accept, parse_media_type
from .multipart import Part, multipart_content_type, multipart_stream, new_boundary, read_multipart
from .qido import QidoQuery, parse_qido, search_instances, search_series, search_studies
from .stow import stow_boundary, stow_response
from .wado import FrameReader, instance_metadata_json, parse_frame_list, parse_render_params

__all__ = [
    "DICOM_JSON",
    "DicomwebError",
    "FrameReader",
    "Part",
    "QidoQuery",
    "attr",
    "error_response",
    "exception_response",
    "instance_metadata_json",
    "multipart_content_type",
    "multipart_stream",
    "new_boundary",
    "parse_accept",
    "parse_frame_list",
    "parse_media_type",
    "parse_qido",
    "parse_render_params",
    "read_multipart",
    "search_instances",
    "search_series",
    "search_studies",
    "stow_boundary",
    "stow_response",
]

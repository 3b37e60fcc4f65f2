"""DICOMweb (PS3.18) routes under /dicomweb/: QIDO-RS search, WADO-RS retrieve, STOW-RS store.

Each view authenticates (API token or session), finds what the user may see through
``studies.permissions`` and hands the work to the protocol modules of ``studies.dicomweb``.
Anything the user may not see is a 404, exactly like something that does not exist; a search
shows them nothing. ``common`` holds what every route shares; one module per kind of route.
"""

from .rendered import (
    instance_thumbnail,
    rendered_frame,
    rendered_instance,
    rendered_series,
    series_thumbnail,
    study_thumbnail,
)
from .retrieve import (
    bulkdata,
    frames,
    instance_metadata,
    retrieve_instance,
    retrieve_series,
    series_metadata,
    study_metadata,
)
from .search import (
    search_all_instances,
    search_all_series,
    search_series_instances,
    search_study_instances,
    search_study_series,
)
from .store import studies_root, study_root

__all__ = [
    "bulkdata",
    "frames",
    "instance_metadata",
    "instance_thumbnail",
    "rendered_frame",
    "rendered_instance",
    "rendered_series",
    "retrieve_instance",
    "retrieve_series",
    "search_all_instances",
    "search_all_series",
    "search_series_instances",
    "search_study_instances",
    "search_study_series",
    "series_metadata",
    "series_thumbnail",
    "studies_root",
    "study_metadata",
    "study_root",
    "study_thumbnail",
]

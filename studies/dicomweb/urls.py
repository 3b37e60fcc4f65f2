"""DICOMweb (PS3.18) routes, mounted at /dicomweb/.

Each route answers with a trailing slash too (clients that join URLs with one, such as some OHIF
and Orthanc configurations), and any other path under /dicomweb/ is a JSON 404, never a page.
DELETE on a study, series or instance goes to ``views.delete`` (``with_delete``), every other
method of those URLs to the route's own view.
"""

from django.urls import path

from . import views
from .views.common import not_found
from .views.delete import delete_instance, delete_series, delete_study, with_delete
from .views.rendered import rendered_study

app_name = "dicomweb"

STUDY = "studies/<str:study_uid>"
SERIES = f"{STUDY}/series/<str:series_uid>"
INSTANCE = f"{SERIES}/instances/<str:sop_uid>"

ROUTES = [
    path("studies", views.studies_root, name="studies"),
    path("series", views.search_all_series, name="all-series"),
    path("instances", views.search_all_instances, name="all-instances"),
    path(STUDY, with_delete(views.study_root, delete_study), name="study"),
    path(f"{STUDY}/metadata", views.study_metadata, name="study-metadata"),
    path(f"{STUDY}/thumbnail", views.study_thumbnail, name="study-thumbnail"),
    path(f"{STUDY}/rendered", rendered_study, name="study-rendered"),
    path(f"{STUDY}/series", views.search_study_series, name="study-series"),
    path(f"{STUDY}/instances", views.search_study_instances, name="study-instances"),
    path(SERIES, with_delete(views.retrieve_series, delete_series), name="series"),
    path(f"{SERIES}/metadata", views.series_metadata, name="series-metadata"),
    path(f"{SERIES}/rendered", views.rendered_series, name="series-rendered"),
    path(f"{SERIES}/thumbnail", views.series_thumbnail, name="series-thumbnail"),
    path(f"{SERIES}/instances", views.search_series_instances, name="series-instances"),
    path(INSTANCE, with_delete(views.retrieve_instance, delete_instance), name="instance"),
    path(f"{INSTANCE}/metadata", views.instance_metadata, name="instance-metadata"),
    path(f"{INSTANCE}/rendered", views.rendered_instance, name="instance-rendered"),
    path(f"{INSTANCE}/thumbnail", views.instance_thumbnail, name="instance-thumbnail"),
    # A tag, or a path to one inside sequence items (00880200/1/7FE00010: the icon's pixel data).
    path(f"{INSTANCE}/bulkdata/<path:tag>", views.bulkdata, name="bulkdata"),
    path(f"{INSTANCE}/frames/<str:frame_list>", views.frames, name="frames"),
    path(f"{INSTANCE}/frames/<str:frame_list>/rendered", views.rendered_frame, name="frame-rendered"),
]

urlpatterns = [
    # The same routes with a trailing slash, under the same names (the access history and the
    # STOW-RS body reader go by name); listed first, so that reverse() gives the routes without it.
    *(path(f"{route.pattern}/", route.callback, name=route.name) for route in ROUTES),
    *ROUTES,
    path("", not_found),
    path("<path:unknown>", not_found),
]

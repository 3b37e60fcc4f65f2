"""DICOMweb (PS3.18) routes, mounted at /dicomweb/."""

from django.urls import path

from . import views

app_name = "dicomweb"

STUDY = "studies/<str:study_uid>"
SERIES = f"{STUDY}/series/<str:series_uid>"
INSTANCE = f"{SERIES}/instances/<str:sop_uid>"

urlpatterns = [
    path("studies", views.studies_root, name="studies"),
    path("series", views.search_all_series, name="all-series"),
    path("instances", views.search_all_instances, name="all-instances"),
    path(STUDY, views.study_root, name="study"),
    path(f"{STUDY}/metadata", views.study_metadata, name="study-metadata"),
    path(f"{STUDY}/thumbnail", views.study_thumbnail, name="study-thumbnail"),
    path(f"{STUDY}/series", views.search_study_series, name="study-series"),
    path(f"{STUDY}/instances", views.search_study_instances, name="study-instances"),
    path(SERIES, views.retrieve_series, name="series"),
    path(f"{SERIES}/metadata", views.series_metadata, name="series-metadata"),
    path(f"{SERIES}/rendered", views.rendered_series, name="series-rendered"),
    path(f"{SERIES}/thumbnail", views.series_thumbnail, name="series-thumbnail"),
    path(f"{SERIES}/instances", views.search_series_instances, name="series-instances"),
    path(INSTANCE, views.retrieve_instance, name="instance"),
    path(f"{INSTANCE}/metadata", views.instance_metadata, name="instance-metadata"),
    path(f"{INSTANCE}/rendered", views.rendered_instance, name="instance-rendered"),
    path(f"{INSTANCE}/thumbnail", views.instance_thumbnail, name="instance-thumbnail"),
    path(f"{INSTANCE}/bulkdata/<str:tag>", views.bulkdata, name="bulkdata"),
    path(f"{INSTANCE}/frames/<str:frame_list>", views.frames, name="frames"),
    path(f"{INSTANCE}/frames/<str:frame_list>/rendered", views.rendered_frame, name="frame-rendered"),
]

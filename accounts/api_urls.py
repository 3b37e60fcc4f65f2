from django.urls import path
from rest_framework.routers import SimpleRouter

from . import api, licence_api

router = SimpleRouter()
router.register("licences", licence_api.LicenceViewSet, basename="api-licence")
router.register("specialists", licence_api.SpecialistViewSet, basename="api-specialist")

urlpatterns = [
    path("auth/token/", api.TokenView.as_view(), name="api-token"),
    path("me/", api.MeView.as_view(), name="api-me"),
    *router.urls,
]

from django.conf import settings
from django.contrib import admin
from django.http import HttpResponseRedirect
from django.templatetags.static import static
from django.urls import include, path

from accounts import views as account_views
from teleconsult import apidocs

api_v1 = [
    path("", include("accounts.api_urls")),
    path("", include("studies.api.urls")),
    path("", include("consultations.api_urls")),
    # The API's description needs a signed-in user or a token (teleconsult/apidocs.py).
    path("schema/", apidocs.SchemaView.as_view(), name="api-schema"),
    path("docs/", apidocs.SwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("redoc/", apidocs.RedocView.as_view(url_name="api-schema"), name="api-redoc"),
]

urlpatterns = [
    path("", account_views.home, name="home"),
    # Pages that name no icon of their own (the Django admin, the API docs) get the portal's.
    path("favicon.ico", lambda request: HttpResponseRedirect(static("img/favicon.svg"))),
    path("accounts/", include("allauth.urls")),
    path("practices/", include("accounts.urls")),
    path("specialists/", include("accounts.console_urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("dicomweb/", include("studies.dicomweb.urls")),
    path("fhir/r4/", include("consultations.fhir.urls")),
    path("s/", include("studies.sharing.urls")),
    path("portal/", include("consultations.portal_urls")),
    path("", include("studies.urls")),
    path("", include("consultations.urls")),
]

admin.site.site_header = "teleconsult administration"
admin.site.site_title = "teleconsult"
if settings.DEBUG:
    admin.site.site_header += " (development)"

from django.urls import path

from . import views

app_name = "consultations"

urlpatterns = [
    path("consults/<int:pk>/", views.consult_detail, name="detail"),
]

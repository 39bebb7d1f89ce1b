"""`/api/v1/medical/…`"""

from django.urls import include, path

urlpatterns = [
    path("dicomweb/", include("apps.medical.dicomweb.urls")),
]

"""`/api/v1/medical/…`"""

from django.urls import include, path

from apps.medical.node_apis import DicomNodeDetailApi, DicomNodeListApi

urlpatterns = [
    path("dicomweb/", include("apps.medical.dicomweb.urls")),
    path("dicom-nodes/", DicomNodeListApi.as_view(), name="medical-dicom-node-list"),
    path("dicom-nodes/<int:node_id>/", DicomNodeDetailApi.as_view(), name="medical-dicom-node-detail"),
]

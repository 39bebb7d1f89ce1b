"""`/api/v1/medical/dicomweb/…`: the PS3.18 resource paths (no trailing slashes, as DICOMweb clients send them).

Where one path serves two transactions (`/studies`: QIDO-RS search on GET, STOW-RS on POST), the
route's view is a resource class combining the two views' methods.
"""

from django.urls import path

from apps.medical.dicomweb import stow


class StudiesResource(stow.StowApi):
    """/studies: store (POST); search (GET, QIDO-RS) joins here."""


class StudyResource(stow.StudyStowApi):
    """/studies/{study}: store into this study (POST); retrieve (GET, WADO-RS) joins here."""


_INSTANCE = "studies/<str:study_uid>/series/<str:series_uid>/instances/<str:sop_uid>"

urlpatterns = [
    path("studies", StudiesResource.as_view(), name="dicomweb-studies"),
    path("studies/<str:study_uid>", StudyResource.as_view(), name="dicomweb-study"),
]

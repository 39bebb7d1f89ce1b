"""`/api/v1/medical/dicomweb/…`: the PS3.18 resource paths (no trailing slashes, as DICOMweb clients send them).

Where one path serves two transactions (`/studies`: QIDO-RS search on GET, STOW-RS on POST), the
route's view is a resource class combining the two views' methods.
"""

from django.urls import path

from apps.medical.dicomweb import qido, stow, wado


class StudiesResource(stow.StowApi, qido.StudySearchApi):
    """/studies: store (POST); search (GET, QIDO-RS) joins here."""


class StudyResource(stow.StudyStowApi, wado.StudyRetrieveApi):
    """/studies/{study}: store into this study (POST); retrieve (GET, WADO-RS) joins here."""


_INSTANCE = "studies/<str:study_uid>/series/<str:series_uid>/instances/<str:sop_uid>"

urlpatterns = [
    path("studies", StudiesResource.as_view(), name="dicomweb-studies"),
    path("studies/<str:study_uid>", StudyResource.as_view(), name="dicomweb-study"),
    # WADO-RS (apps.medical.dicomweb.wado)
    path("studies/<str:study_uid>/metadata", wado.StudyMetadataApi.as_view(), name="dicomweb-study-metadata"),
    path("studies/<str:study_uid>/rendered", wado.StudyRenderedApi.as_view(), name="dicomweb-study-rendered"),
    path("studies/<str:study_uid>/thumbnail", wado.StudyThumbnailApi.as_view(), name="dicomweb-study-thumbnail"),
    path("studies/<str:study_uid>/series/<str:series_uid>", wado.SeriesRetrieveApi.as_view(), name="dicomweb-series"),
    path(
        "studies/<str:study_uid>/series/<str:series_uid>/metadata",
        wado.SeriesMetadataApi.as_view(),
        name="dicomweb-series-metadata",
    ),
    path(
        "studies/<str:study_uid>/series/<str:series_uid>/rendered",
        wado.SeriesRenderedApi.as_view(),
        name="dicomweb-series-rendered",
    ),
    path(
        "studies/<str:study_uid>/series/<str:series_uid>/thumbnail",
        wado.SeriesThumbnailApi.as_view(),
        name="dicomweb-series-thumbnail",
    ),
    path(_INSTANCE, wado.InstanceRetrieveApi.as_view(), name="dicomweb-instance"),
    path(f"{_INSTANCE}/metadata", wado.InstanceMetadataApi.as_view(), name="dicomweb-instance-metadata"),
    path(f"{_INSTANCE}/rendered", wado.InstanceRenderedApi.as_view(), name="dicomweb-instance-rendered"),
    path(f"{_INSTANCE}/thumbnail", wado.InstanceThumbnailApi.as_view(), name="dicomweb-instance-thumbnail"),
    path(f"{_INSTANCE}/frames/<str:frames>", wado.FramesApi.as_view(), name="dicomweb-frames"),
    path(f"{_INSTANCE}/frames/<str:frames>/rendered", wado.FrameRenderedApi.as_view(), name="dicomweb-frame-rendered"),
    path(
        f"{_INSTANCE}/frames/<str:frames>/thumbnail", wado.FrameThumbnailApi.as_view(), name="dicomweb-frame-thumbnail"
    ),
    path(f"{_INSTANCE}/bulk/<str:tag>", wado.BulkDataApi.as_view(), name="dicomweb-bulkdata"),
    # QIDO-RS searches (apps.medical.dicomweb.qido)
    path("series", qido.SeriesSearchApi.as_view(), name="dicomweb-series-search"),
    path("instances", qido.InstanceSearchApi.as_view(), name="dicomweb-instances-search"),
    path("studies/<str:study_uid>/series", qido.StudySeriesSearchApi.as_view(), name="dicomweb-study-series"),
    path("studies/<str:study_uid>/instances", qido.StudyInstanceSearchApi.as_view(), name="dicomweb-study-instances"),
    path(
        "studies/<str:study_uid>/series/<str:series_uid>/instances",
        qido.SeriesInstanceSearchApi.as_view(),
        name="dicomweb-series-instances",
    ),
]

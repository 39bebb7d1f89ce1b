"""Job API: list, detail (poll this for progress), cancel.

Any member or key of the organization, limited to the jobs it may see: the domains of its scopes
and the platform's jobs (org admins see all; see `core.jobs.selectors`). Another domain's job is a
404, like another organization's.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from core.api.schema import conflict
from core.api.views import OrgAPIView
from core.jobs.selectors import job_get, job_list
from core.jobs.serializers import JobFilterSerializer, JobOutputSerializer
from core.jobs.services import job_cancel


class JobListApi(OrgAPIView):
    @extend_schema(parameters=[JobFilterSerializer], responses=JobOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        filters = JobFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        return self.paginate(request, job_list(actor=self.actor, **filters.validated_data), JobOutputSerializer)


class JobDetailApi(OrgAPIView):
    @extend_schema(responses=JobOutputSerializer)
    def get(self, request: Request, job_id: int) -> Response:
        return Response(JobOutputSerializer(job_get(actor=self.actor, job_id=job_id)).data)


class JobCancelApi(OrgAPIView):
    @extend_schema(
        request=None,
        responses={200: JobOutputSerializer, 409: conflict("`job_finished`: the job has already finished.")},
    )
    def post(self, request: Request, job_id: int) -> Response:
        return Response(JobOutputSerializer(job_cancel(actor=self.actor, job_id=job_id)).data)

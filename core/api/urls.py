from django.urls import path

from core.jobs.apis import JobCancelApi, JobDetailApi, JobListApi

urlpatterns = [
    path("jobs/", JobListApi.as_view(), name="job-list"),
    path("jobs/<int:job_id>/", JobDetailApi.as_view(), name="job-detail"),
    path("jobs/<int:job_id>/cancel/", JobCancelApi.as_view(), name="job-cancel"),
]

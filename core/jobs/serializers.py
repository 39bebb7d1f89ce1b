from rest_framework import serializers

from core.jobs.choices import JOB_DOMAINS, JobStatus
from core.jobs.models import Job


class JobOutputSerializer(serializers.ModelSerializer[Job]):
    url = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id",
            "kind",
            "domain",
            "status",
            "progress",
            "message",
            "result",
            "error",
            "attempts",
            "created_at",
            "started_at",
            "finished_at",
            "url",
        ]
        read_only_fields = fields

    def get_url(self, job: Job) -> str:
        return f"/api/v1/jobs/{job.pk}/"


class JobFilterSerializer(serializers.Serializer[None]):
    status = serializers.ChoiceField(choices=JobStatus.choices, required=False)
    kind = serializers.CharField(required=False, max_length=100)
    domain = serializers.ChoiceField(choices=sorted(JOB_DOMAINS), required=False)

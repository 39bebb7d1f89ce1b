"""The Celery app. Queues: `default` (light), `training` (heavy), `inference` (batch/video)."""

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings")

app = Celery("tessera")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("default"), Queue("training"), Queue("inference"))
app.autodiscover_tasks()

"""The Celery app. Queues: `default` (light), `training` (heavy), `inference` (batch/video)."""

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings")

app = Celery("tessera")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("default"), Queue("training"), Queue("inference"))
# `<app>.tasks` of every installed app (domain apps), and the platform's own task modules, which
# live in sub-packages of `core` that autodiscovery of the `core` app alone does not reach.
app.autodiscover_tasks()
app.autodiscover_tasks(["core.jobs"])

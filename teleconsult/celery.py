"""The Celery app. Task defaults (late acks, requeue on a lost worker) live here, not on tasks."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "teleconsult.settings")

app = Celery("teleconsult")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

"""The Celery app. Task defaults (late acks, requeue on a lost worker) live here, not on tasks.

A worker killed outright takes nothing with it: the processes it started end with it
(``worker_processes``), and the messages it had taken are put back as soon as a worker sees it is
gone (``redelivery``), rather than when the broker's visibility timeout comes round.
"""

import os

from celery import Celery, signals

from teleconsult import redelivery, worker_processes

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "teleconsult.settings")

app = Celery("teleconsult")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

app.steps["consumer"].add(redelivery.Redelivery)
signals.task_received.connect(redelivery.note_taken)
signals.worker_init.connect(worker_processes.note_worker)
signals.worker_process_init.connect(worker_processes.end_with_worker)
signals.worker_process_init.connect(redelivery.forget_lease)
signals.beat_embedded_init.connect(worker_processes.end_with_worker)

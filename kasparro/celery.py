"""The Celery app, configured from Django settings (every `CELERY_*` setting in settings.py).

celery -A kasparro worker --loglevel=INFO          # runs ingestion tasks
celery -A kasparro beat --loglevel=INFO            # dispatches them on schedule (one only)
celery -A kasparro flower                          # watch them (FLOWER_BASIC_AUTH=user:pass)
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kasparro.settings")
# Flower's task list shows what each task is for (its source, in kwargs) and what came of it; a
# skipped or failed run fails its task, so it is never a green success there. (Read by Flower
# from the environment as it starts, after this module: override it the same way.)
os.environ.setdefault("FLOWER_TASKS_COLUMNS", "name,state,kwargs,result,exception,received,runtime,worker,uuid")

app = Celery("kasparro")
app.config_from_object("django.conf:settings", namespace="CELERY")

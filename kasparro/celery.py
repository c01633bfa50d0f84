"""The Celery app, configured from Django settings (every `CELERY_*` setting in settings.py).

celery -A kasparro worker --loglevel=INFO          # runs ingestion tasks
celery -A kasparro beat --loglevel=INFO            # dispatches them on schedule (one only)
celery -A kasparro flower                          # watch them (FLOWER_BASIC_AUTH=user:pass)
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kasparro.settings")

app = Celery("kasparro")
app.config_from_object("django.conf:settings", namespace="CELERY")

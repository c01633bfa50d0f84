"""The beat schedule: one periodic task per source, kept in step with settings on every `migrate`.

An interval edited in the admin stays as edited until the setting itself changes: the value last
applied from settings is remembered per source, and only a different setting is applied again.
"""

from __future__ import annotations

import json
import logging

from django.conf import settings
from django.db import transaction
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from crypto.models import SourceSchedule
from crypto.sources import SOURCE_NAMES

logger = logging.getLogger(__name__)

TASK_NAME = "tasks.ingest_source"


def periodic_task_name(*, source: str) -> str:
    return f"ingest {source}"


@transaction.atomic
def schedules_sync() -> list[str]:
    """Create or update each source's periodic task from settings; returns what changed."""
    changes = []
    for source in SOURCE_NAMES:
        every = settings.INGEST_INTERVALS[source]
        name = periodic_task_name(source=source)
        applied = SourceSchedule.objects.select_for_update().filter(source=source).first()
        task = PeriodicTask.objects.filter(name=name).first()
        if task is not None and applied is not None and applied.applied_interval_seconds == every:
            continue  # the setting did not change: whatever the admin set stands
        interval, _ = IntervalSchedule.objects.get_or_create(every=every, period=IntervalSchedule.SECONDS)
        if task is None:
            PeriodicTask.objects.create(
                name=name,
                task=TASK_NAME,
                interval=interval,
                kwargs=json.dumps({"source": source}),
                description=f"Ingest {source}. Interval from INGEST_INTERVAL_{source.upper()}; an edit "
                "here lasts until that setting changes.",
            )
            changes.append(f"{name}: created, every {every}s")
        else:
            task.interval = interval
            task.save(update_fields=["interval"])
            changes.append(f"{name}: every {every}s (setting changed)")
        SourceSchedule.objects.update_or_create(source=source, defaults={"applied_interval_seconds": every})
    for change in changes:
        logger.info("beat schedule %s", change)
    return changes

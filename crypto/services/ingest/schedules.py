"""The beat schedule: one periodic task per source, kept in step with settings on every `migrate`.

A source that is not configured (the csv source without CSV_SOURCE_PATH) is scheduled disabled,
so a fresh deployment does not fail a run every interval; it is enabled once the setting is set.
An interval or an enabled flag edited in the admin stays as edited until the setting behind it
changes: what was last applied from settings is remembered per source, and only a different
value is applied again.
"""

from __future__ import annotations

import json
import logging

from django.conf import settings
from django.db import transaction
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from crypto.models import SourceSchedule
from crypto.sources import sources

logger = logging.getLogger(__name__)

TASK_NAME = "tasks.ingest_source"


def periodic_task_name(*, source: str) -> str:
    return f"ingest {source}"


def unconfigured_reason(*, source: str) -> str | None:
    """Why a source cannot run with the current settings, or None when it can."""
    return sources()[source].unconfigured_reason(settings=settings)


@transaction.atomic
def schedules_sync() -> list[str]:
    """Create or update each source's periodic task from settings; returns what changed."""
    changes = []
    for source, facts in sources().items():
        every = getattr(settings, facts.interval_setting)
        reason = unconfigured_reason(source=source)
        enabled = reason is None
        name = periodic_task_name(source=source)
        applied = SourceSchedule.objects.select_for_update().filter(source=source).first()
        task = PeriodicTask.objects.filter(name=name).first()
        interval_changed = applied is None or applied.applied_interval_seconds != every
        enabled_changed = applied is None or applied.applied_enabled != enabled
        if task is not None and not interval_changed and not enabled_changed:
            continue  # the settings did not change: whatever the admin set stands
        said = f"every {every}s" + ("" if enabled else f", disabled: {reason}")
        interval, _ = IntervalSchedule.objects.get_or_create(every=every, period=IntervalSchedule.SECONDS)
        if task is None:
            PeriodicTask.objects.create(
                name=name,
                task=TASK_NAME,
                interval=interval,
                enabled=enabled,
                kwargs=json.dumps({"source": source}),
                description=f"Ingest {source}. Interval from INGEST_INTERVAL_{source.upper()}; an edit "
                "here lasts until that setting changes.",
            )
            changes.append(f"{name}: created, {said}")
        else:
            fields = []
            if interval_changed:
                task.interval = interval
                fields.append("interval")
                changes.append(f"{name}: every {every}s (setting changed)")
            if enabled_changed:
                task.enabled = enabled
                fields.append("enabled")
                changes.append(f"{name}: " + ("enabled (configured now)" if enabled else f"disabled: {reason}"))
            task.save(update_fields=fields)
        SourceSchedule.objects.update_or_create(
            source=source, defaults={"applied_interval_seconds": every, "applied_enabled": enabled}
        )
    for change in changes:
        logger.info("beat schedule %s", change)
    return changes

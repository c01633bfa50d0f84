"""The beat schedule follows settings on migrate, without undoing edits made in the admin."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.test import override_settings
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from crypto.api.selectors import schedule_of
from crypto.models import SourceSchedule
from crypto.services.ingest.schedules import schedules_sync

pytestmark = pytest.mark.django_db


def interval_of(source: str) -> int:
    task = PeriodicTask.objects.get(name=f"ingest {source}")
    assert task.interval is not None
    return task.interval.every


def test_migrate_creates_one_periodic_task_per_source_from_settings() -> None:
    call_command("migrate", verbosity=0)
    tasks = {t.name: t for t in PeriodicTask.objects.filter(task="tasks.ingest_source")}
    assert set(tasks) == {"ingest coingecko", "ingest coinpaprika", "ingest csv"}
    assert json.loads(tasks["ingest csv"].kwargs) == {"source": "csv"}
    assert (interval_of("coingecko"), interval_of("coinpaprika"), interval_of("csv")) == (300, 600, 900)
    assert all(t.interval.period == IntervalSchedule.SECONDS for t in tasks.values())


def test_syncing_twice_changes_nothing() -> None:
    schedules_sync()
    assert schedules_sync() == []
    assert PeriodicTask.objects.filter(task="tasks.ingest_source").count() == 3


def test_an_admin_edit_survives_migrate_while_the_setting_is_unchanged() -> None:
    schedules_sync()
    task = PeriodicTask.objects.get(name="ingest coingecko")
    task.interval, _ = IntervalSchedule.objects.get_or_create(every=45, period=IntervalSchedule.SECONDS)
    task.enabled = False
    task.save()
    call_command("migrate", verbosity=0)
    task.refresh_from_db()
    assert (interval_of("coingecko"), task.enabled) == (45, False)


def test_a_changed_setting_is_applied_on_the_next_migrate_keeping_enabled_as_set() -> None:
    schedules_sync()
    PeriodicTask.objects.filter(name="ingest coinpaprika").update(enabled=False)
    with override_settings(INGEST_INTERVAL_COINGECKO=300, INGEST_INTERVAL_COINPAPRIKA=1200, INGEST_INTERVAL_CSV=900):
        changes = schedules_sync()
    assert changes == ["ingest coinpaprika: every 1200s (setting changed)"]
    assert interval_of("coinpaprika") == 1200
    assert not PeriodicTask.objects.get(name="ingest coinpaprika").enabled


def test_a_deleted_periodic_task_is_created_again() -> None:
    schedules_sync()
    PeriodicTask.objects.filter(name="ingest coingecko").delete()
    assert schedules_sync() == ["ingest coingecko: created, every 300s"]


def test_the_csv_source_is_scheduled_disabled_until_csv_source_path_is_set() -> None:
    PeriodicTask.objects.filter(name="ingest csv").delete()
    SourceSchedule.objects.filter(source="csv").delete()
    with override_settings(CSV_SOURCE_PATH=""):
        changes = schedules_sync()
    assert "ingest csv: created, every 900s, disabled: CSV_SOURCE_PATH is not set" in changes
    assert not PeriodicTask.objects.get(name="ingest csv").enabled
    assert PeriodicTask.objects.get(name="ingest coingecko").enabled
    assert schedule_of(source="csv") == (False, None)  # /health: not scheduled, so never stale

    with override_settings(CSV_SOURCE_PATH="/data/csv"):
        assert schedules_sync() == ["ingest csv: enabled (configured now)"]
    assert PeriodicTask.objects.get(name="ingest csv").enabled

    with override_settings(CSV_SOURCE_PATH=""):
        assert schedules_sync() == ["ingest csv: disabled: CSV_SOURCE_PATH is not set"]
    assert not PeriodicTask.objects.get(name="ingest csv").enabled


def test_an_admin_disabling_a_configured_csv_source_survives_migrate() -> None:
    with override_settings(CSV_SOURCE_PATH="/data/csv"):
        schedules_sync()
        PeriodicTask.objects.filter(name="ingest csv").update(enabled=False)
        assert schedules_sync() == []
    assert not PeriodicTask.objects.get(name="ingest csv").enabled


def test_a_schedule_synced_before_enabled_was_tracked_is_disabled_when_unconfigured() -> None:
    """Rows from before migration 0007 say enabled; an unconfigured csv source is then disabled once."""
    schedules_sync()
    SourceSchedule.objects.filter(source="csv").update(applied_enabled=True)  # the migration's default
    PeriodicTask.objects.filter(name="ingest csv").update(enabled=True)
    with override_settings(CSV_SOURCE_PATH=""):
        assert schedules_sync() == ["ingest csv: disabled: CSV_SOURCE_PATH is not set"]
        assert schedules_sync() == []


def test_health_uses_the_interval_beat_uses_and_none_when_disabled() -> None:
    schedules_sync()
    PeriodicTask.objects.filter(name="ingest csv").update(enabled=False)
    assert schedule_of(source="coingecko") == (True, 300)
    assert schedule_of(source="csv") == (False, None)


@pytest.mark.django_db(transaction=True)
def test_migrating_back_and_forward_again_works_the_schedule_synced_only_when_all_is_applied() -> None:
    try:
        call_command("migrate", "crypto", "0006", verbosity=0)  # before applied_enabled existed
    finally:
        call_command("migrate", verbosity=0)
    assert SourceSchedule.objects.count() == 3

"""A backfill job's windows: each claimed by one task at a time, and never left `running` when the
work stops midway (the Celery side, with real workers, is tests/distributed/test_backfill_jobs.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from crypto.models import BackfillWindow
from crypto.services.ingest import jobs
from crypto.services.ingest.history import history_plan
from crypto.services.ingest.lifecycle import TaskCaller
from crypto.sources.body import Coin

pytestmark = pytest.mark.django_db


def one_window() -> BackfillWindow:
    since = datetime(2025, 1, 1, tzinfo=UTC)
    plan = history_plan(source="coingecko", coins=[Coin("bitcoin")], since=since, until=since + timedelta(days=2))
    job, created = jobs.history_job_start(source="coingecko", windows=plan, request="test", until="2025-01-03")
    assert created
    return job.windows.get()


def test_a_window_running_under_one_task_is_left_to_it_and_its_redelivery_takes_it_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    window = one_window()
    worked: list[str] = []
    monkeypatch.setattr(jobs, "_window_work", lambda *, window, task: worked.append(task.task_id))
    BackfillWindow.objects.filter(pk=window.pk).update(status="running", task_id="A", started_at=timezone.now())

    _, run = jobs.window_run(window_id=window.pk, task=TaskCaller(task_id="B"))
    assert run is None and worked == [], "a duplicate sent by a resume does not do the window twice"
    jobs.window_run(window_id=window.pk, task=TaskCaller(task_id="A"))
    assert worked == ["A"], "the task that holds it (redelivered, same id) does it"
    window.refresh_from_db()
    assert window.status == "done" and window.task_id == "A"

    done, run = jobs.window_run(window_id=window.pk, task=TaskCaller(task_id="C"))
    assert run is None and worked == ["A"] and done.status == "done", "a window done is never done again"


def test_a_window_running_past_any_task_time_is_lost_and_sent_and_taken_again(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    window = one_window()
    long_ago = timezone.now() - timedelta(seconds=settings.INGEST_TIME_LIMIT + settings.INGEST_RETRY_BACKOFF_CAP + 120)
    BackfillWindow.objects.filter(pk=window.pk).update(status="running", task_id="killed", started_at=long_ago)
    assert window.job.windows.filter(jobs._sendable()).count() == 1, "a resume sends it again"
    monkeypatch.setattr(jobs, "_window_work", lambda *, window, task: None)
    jobs.window_run(window_id=window.pk, task=TaskCaller(task_id="new"))
    window.refresh_from_db()
    assert window.status == "done" and window.task_id == "new"


def test_whatever_stops_a_window_midway_leaves_it_failed_with_why_never_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    window = one_window()

    def stopped(*, window: BackfillWindow, task: Any) -> None:
        raise RuntimeError("a bug, or the time limit")

    monkeypatch.setattr(jobs, "_window_work", stopped)
    with pytest.raises(RuntimeError):
        jobs.window_run(window_id=window.pk, task=TaskCaller(task_id="T"))
    window.refresh_from_db()
    assert window.status == "failed" and window.error == "stopped: RuntimeError: a bug, or the time limit"
    assert window.job.windows.filter(jobs._sendable()).count() == 1, "and the same command tries it again"

"""History backfill spread across real `celery worker` processes: one task per window on the
`history` queue, a job that resumes, a killed worker's window redelivered, live runs not starved.

The upstream is the stub on 127.0.0.1 answering CoinGecko's `/coins/{id}/market_chart/range` as
its documentation shows; the command runs as an operator would run it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from bench.common import chart_body
from crypto.models import BackfillJob, BackfillWindow, IngestionRun, MarketQuote, RawBody
from tests.conftest import PAPRIKA, upstream_bytes
from tests.distributed.conftest import PAPRIKA_PATH, send_task
from tests.processes import ROOT, CeleryProcess, StubUpstream, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]
RANGE = "/api/v3/coins/"


def chart(path: str, query: dict[str, list[str]]) -> tuple[int, bytes]:
    coin = path.removeprefix(RANGE).split("/")[0]
    return 200, chart_body(coin, int(query["from"][0]), int(query["to"][0]))


def backfill(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "manage.py", "backfill", "--source", "coingecko", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_history_windows_spread_over_workers_resume_and_a_killed_workers_window_is_finished_once(
    celery_env: dict[str, str], processes: Callable[..., CeleryProcess], stub: StubUpstream
) -> None:
    stub.answers[RANGE] = chart
    bitcoin = f"{RANGE}bitcoin/market_chart/range"
    stub.delay[bitcoin] = 4
    asked = ["--coins", "bitcoin,ethereum", "--since", "2025-01-01", "--until", "2025-05-01", "--async"]
    doomed = processes("worker", celery_env, "doomed")
    sent = backfill(celery_env, *asked)
    assert sent.returncode == 0, sent.stderr
    assert "job #" in sent.stdout and "4 window task(s) sent to the workers' history queue" in sent.stdout
    assert stub.arrived[bitcoin].wait(30)
    doomed.kill()  # mid-window: its task is unacknowledged, so the broker redelivers it
    assert not MarketQuote.objects.exists(), "nothing half-written by the killed window"

    stub.delay[bitcoin] = 0
    processes("worker", celery_env, "w1")
    processes("worker", celery_env, "w2")
    resumed = backfill(celery_env, *asked, "--wait", timeout=150)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resumes" in resumed.stdout and "4 of 4 window(s) done, 0 failed" in resumed.stdout
    assert "[##############################] 4/4 windows" in resumed.stderr

    [job] = BackfillJob.objects.all()
    windows = list(job.windows.order_by("position"))
    assert [w.status for w in windows] == ["done"] * 4
    assert windows[0].attempts >= 2, "the killed worker's window ran again"
    assert RawBody.objects.filter(history_of__in=["bitcoin", "ethereum"]).count() == 4
    assert MarketQuote.objects.filter(history=True).count() == 2 * 2881, "nothing duplicated"
    assert set(IngestionRun.objects.filter(trigger="history").values_list("status", flat=True)) <= {
        "succeeded",
        "failed",  # the killed attempt, closed as abandoned
    }

    calls = len(stub.calls)
    again = backfill(celery_env, *asked, "--wait")
    assert again.returncode == 0 and "4 of 4 window(s) already done" in again.stdout
    assert "0 window task(s) sent" in again.stdout and len(stub.calls) == calls, "done windows are not asked again"


def test_a_live_run_is_not_starved_behind_a_queue_of_history_windows(
    celery_env: dict[str, str], processes: Callable[..., CeleryProcess], stub: StubUpstream
) -> None:
    stub.answers[RANGE] = chart
    stub.delay[f"{RANGE}bitcoin/market_chart/range"] = 1
    sent = backfill(celery_env, "--coins", "bitcoin", "--since", "2023-01-01", "--until", "2025-12-01", "--async")
    assert sent.returncode == 0, sent.stderr
    [job] = BackfillJob.objects.all()
    total = job.windows.count()
    assert total == 12
    processes("worker", celery_env, "only")  # one process, serving both queues as started by default
    wait_for(lambda: job.windows.filter(status="done").exists(), timeout=60, what="a first history window")
    task_id = send_task(celery_env["REDIS_URL"], "coinpaprika")
    wait_for(
        lambda: IngestionRun.objects.filter(task_id=task_id, status="succeeded").exists(),
        timeout=60,
        what="the live run",
    )
    done = job.windows.filter(status=BackfillWindow.Status.DONE).count()
    assert done < total - 3, f"the live run waited for {done} of {total} history windows"
    assert stub.calls_to(PAPRIKA_PATH)
    wait_for(lambda: job.windows.filter(status="done").count() == total, timeout=90, what="every window")


def test_an_archive_spreads_one_task_per_file_over_workers_and_resumes(
    celery_env: dict[str, str], processes: Callable[..., CeleryProcess], tmp_path: Path
) -> None:
    tickers = orjson.loads(upstream_bytes(PAPRIKA))
    archive = tmp_path / "archive"
    archive.mkdir()
    for hour in range(3):
        later = [dict(t, last_updated=f"2023-08-11T{9 + hour:02d}:00:00Z") for t in tickers]
        (archive / f"tickers-{hour}.json").write_bytes(orjson.dumps(later))
    processes("worker", celery_env, "w1")
    processes("worker", celery_env, "w2")
    ingest = [sys.executable, "manage.py", "ingest", "--source", "coinpaprika", "--file", str(archive), "--async"]
    done = subprocess.run([*ingest, "--wait"], cwd=ROOT, env=celery_env, capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 window task(s) sent" in done.stdout and "3 of 3 window(s) done, 0 failed" in done.stdout
    assert MarketQuote.objects.filter(source="coinpaprika").count() == 3 * 2500
    workers = set(IngestionRun.objects.filter(trigger="file").values_list("task_id", flat=True))
    assert len(workers) == 3 and "" not in workers, "each file was its own task"

    again = subprocess.run([*ingest, "--wait"], cwd=ROOT, env=celery_env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "3 of 3 window(s) already done" in again.stdout
    assert IngestionRun.objects.filter(trigger="file").count() == 3, "nothing loaded twice"

"""Scheduling and delivery with real `celery worker` and `celery beat` processes.

Upstream is a stub HTTP server on 127.0.0.1 run by the test; Redis is a private server the test
may stop; the database is the test database, read here as the workers commit to it.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from django.test import override_settings

from crypto.models import IngestionRun, MarketQuote, RawBody
from crypto.services.ingest.schedules import schedules_sync
from tests.distributed.conftest import GECKO_PATH, PAPRIKA_PATH, send_task
from tests.processes import ROOT, CeleryProcess, RedisServer, StubUpstream, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]


def final_runs(task_id: str) -> list[IngestionRun]:
    runs = list(IngestionRun.objects.filter(task_id=task_id).order_by("started_at", "id"))
    if runs and runs[-1].status != "running" and not runs[-1].retry_scheduled:
        return runs
    return []


def test_beat_dispatches_every_source_to_a_worker_and_a_second_beat_stands_by(
    celery_env: dict[str, str], processes: Callable[..., CeleryProcess]
) -> None:
    with override_settings(
        INGEST_INTERVAL_COINGECKO=2,
        INGEST_INTERVAL_COINPAPRIKA=2,
        INGEST_INTERVAL_CSV=2,
        CSV_SOURCE_PATH=celery_env["CSV_SOURCE_PATH"],
    ):
        schedules_sync()
    processes("worker", celery_env, "w1")
    first = processes("beat", celery_env, "beat1")
    wait_for(lambda: "is now dispatching" in first.output(), timeout=20, what="the first beat to lead")
    second = processes("beat", celery_env, "beat2")

    wait_for(
        lambda: {"coingecko", "coinpaprika", "csv"} <= set(RawBody.objects.values_list("source", flat=True)),
        timeout=60,
        what="rows from every source",
    )
    wait_for(
        lambda: IngestionRun.objects.filter(source="csv", status="succeeded").count() >= 2,
        timeout=30,
        what="a second scheduled csv run",
    )
    assert IngestionRun.objects.filter(trigger="task").exclude(task_id="").count() >= 4
    wait_for(lambda: "stands by" in second.output(), timeout=20, what="the second beat to stand by")
    assert "Sending due task" not in second.output(), "only the leading beat dispatches"
    assert RawBody.objects.filter(source="coingecko").count() == 2
    assert MarketQuote.objects.filter(source="coinpaprika").count() == 2500


def test_a_worker_killed_mid_run_has_its_task_redelivered_and_the_data_equals_a_clean_run(
    celery_env: dict[str, str], processes: Callable[..., CeleryProcess], stub: StubUpstream
) -> None:
    stub.delay[PAPRIKA_PATH] = 4
    doomed = processes("worker", celery_env, "doomed")
    task_id = send_task(celery_env["REDIS_URL"], "coinpaprika")
    assert stub.arrived[PAPRIKA_PATH].wait(30)
    doomed.kill()
    assert RawBody.objects.count() == 0, "nothing half-written by the killed run"

    stub.delay[PAPRIKA_PATH] = 0
    processes("worker", celery_env, "survivor")
    runs = wait_for(lambda: final_runs(task_id), timeout=60, what="the redelivered task to finish")

    assert [r.status for r in runs] == ["failed", "succeeded"]
    assert runs[0].error.startswith("abandoned")
    assert len(stub.calls_to(PAPRIKA_PATH)) == 2
    assert RawBody.objects.count() == 1
    assert MarketQuote.objects.count() == 2500
    assert MarketQuote.objects.values("asset_id", "last_updated").distinct().count() == 2500


def test_two_workers_given_the_same_source_at_once_write_once(
    celery_env: dict[str, str], processes: Callable[..., CeleryProcess], stub: StubUpstream
) -> None:
    stub.delay[PAPRIKA_PATH] = 3
    processes("worker", celery_env, "w1")
    processes("worker", celery_env, "w2")
    ids = [send_task(celery_env["REDIS_URL"], "coinpaprika") for _ in range(2)]
    runs = [wait_for(lambda t=t: final_runs(t), timeout=60, what="both tasks")[-1] for t in ids]

    assert sorted(r.status for r in runs) == ["skipped", "succeeded"]
    skipped = next(r for r in runs if r.status == "skipped")
    assert "already being ingested" in skipped.error
    assert len(stub.calls_to(PAPRIKA_PATH)) == 1
    assert RawBody.objects.count() == 1 and MarketQuote.objects.count() == 2500


def test_redis_restarted_while_tasks_are_queued_loses_no_task_and_the_worker_keeps_consuming(
    celery_env: dict[str, str],
    processes: Callable[..., CeleryProcess],
    stub: StubUpstream,
    redis_server: RedisServer,
) -> None:
    stub.delay[PAPRIKA_PATH] = 1
    processes("worker", celery_env, "w1")
    queued = [send_task(redis_server.url, source) for source in ("coinpaprika", "coingecko", "csv")]
    redis_server.stop()
    time.sleep(3)
    redis_server.start()
    for task_id in queued:
        wait_for(lambda t=task_id: final_runs(t), timeout=90, what=f"queued task {task_id}")
    assert set(IngestionRun.objects.filter(status="succeeded").values_list("source", flat=True)) == {
        "coinpaprika",
        "coingecko",
        "csv",
    }

    after = send_task(redis_server.url, "csv")
    runs = wait_for(lambda: final_runs(after), timeout=60, what="a task sent after the restart")
    assert runs[-1].status == "succeeded"


def test_429_with_retry_after_is_not_retried_before_it_says(
    celery_env: dict[str, str], processes: Callable[..., CeleryProcess], stub: StubUpstream
) -> None:
    stub.scripted[PAPRIKA_PATH].append((429, {"Retry-After": "3"}, b'{"error": "Too many requests"}'))
    processes("worker", celery_env, "w1")
    task_id = send_task(celery_env["REDIS_URL"], "coinpaprika")
    runs = wait_for(lambda: final_runs(task_id), timeout=60, what="the task")
    assert runs[-1].status == "succeeded"
    first, second = stub.calls_to(PAPRIKA_PATH)
    assert second["at"] - first["at"] >= 3.0


def test_a_run_past_the_soft_time_limit_fails_as_transient_with_the_limit_and_its_retry_succeeds(
    celery_env: dict[str, str], processes: Callable[..., CeleryProcess], stub: StubUpstream
) -> None:
    stub.delay[PAPRIKA_PATH] = 9.0  # past INGEST_SOFT_TIME_LIMIT=8, within the HTTP read timeout
    processes("worker", celery_env, "w1")
    task_id = send_task(celery_env["REDIS_URL"], "coinpaprika")
    first = wait_for(
        lambda: IngestionRun.objects.filter(task_id=task_id, status="failed").first(), timeout=60, what="the timeout"
    )
    stub.delay[PAPRIKA_PATH] = 0.0
    assert first.error == "ran past its soft time limit (INGEST_SOFT_TIME_LIMIT=8s)"
    assert (first.error_kind, first.retry_scheduled) == ("transient", True)
    runs = wait_for(lambda: final_runs(task_id), timeout=60, what="the retry")
    assert runs[-1].status == "succeeded" and runs[-1].rows_upserted > 0


def calls_from_processes(env: dict[str, str], *, processes: int, calls: int) -> list[int]:
    """`processes` processes each making `calls` calls to CoinGecko through the workers' client,
    at once; their exit statuses."""
    script = (
        "import django; django.setup()\n"
        "from django.conf import settings\n"
        "from crypto.services.ingest.run import http_client_build\n"
        "from crypto.sources import source_get\n"
        "client = http_client_build(source=source_get(name='coingecko'))\n"
        f"for _ in range({calls}):\n"
        "    client.get_json(settings.COINGECKO_BASE_URL + '/coins/markets', params={'page': 1})\n"
    )
    started = [subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env) for _ in range(processes)]
    return [process.wait(60) for process in started]


def test_shared_rate_limit_holds_across_processes(celery_env: dict[str, str], stub: StubUpstream) -> None:
    """Two processes call one upstream through the workers' client; in any window the upstream
    sees no more calls than the limit."""
    env = {**celery_env, "COINGECKO_CALLS_PER_MINUTE": "4", "RATE_LIMIT_WINDOW_SECONDS": "2"}
    assert calls_from_processes(env, processes=2, calls=6) == [0, 0]

    times = sorted(call["at"] for call in stub.calls_to(GECKO_PATH))
    assert len(times) == 12
    busiest = max(sum(1 for t in times if start <= t < start + 2.0) for start in times)
    assert busiest <= 4
    assert times[-1] - times[0] >= 4.0, "12 calls at 4 per 2 s need at least two full windows"


def test_a_retry_after_from_the_upstream_pauses_every_process_not_only_the_one_that_got_it(
    celery_env: dict[str, str], stub: StubUpstream
) -> None:
    """Two processes call one upstream; one gets a 429 with Retry-After: 2. Until the pause is
    over the upstream hears from neither: the pause is the budget's, shared through Redis."""
    throttled = b'{"status": {"error_code": 429, "error_message": "You\'ve exceeded the Rate Limit."}}'
    stub.scripted[GECKO_PATH].append((429, {"Retry-After": "2"}, throttled))
    stub.delay[GECKO_PATH] = 0.05  # each process keeps calling for a while: the other is still at it
    env = {**celery_env, "COINGECKO_CALLS_PER_MINUTE": "1000"}
    assert calls_from_processes(env, processes=2, calls=8) == [0, 0]

    times = sorted(call["at"] for call in stub.calls_to(GECKO_PATH))
    assert len(times) == 17  # sixteen answers and the 429
    [refused] = [call["at"] for call in stub.calls_to(GECKO_PATH)][:1]
    # A call the other process had already sent when the 429 was answered arrives within
    # milliseconds; after that, nobody calls until the pause is over.
    during = [t - refused for t in times if refused + 0.1 < t < refused + 1.9]
    assert not during, f"calls {during} s after the 429 asked every caller to wait 2 s"
    assert any(t >= refused + 1.9 for t in times), "the calls went on once the pause was over"


def test_a_secret_key_appears_in_no_log_line_and_no_task_message(
    celery_env: dict[str, str],
    processes: Callable[..., CeleryProcess],
    stub: StubUpstream,
    redis_server: RedisServer,
) -> None:
    secret = "CG-secret-key-4f9a1c"
    env = {**celery_env, "COINGECKO_API_KEY": secret, "COINPAPRIKA_API_KEY": secret}
    cli = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "ingest",
            "--source",
            "coingecko",
            "--async",
            "--wait",
            "--timeout",
            "60",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    message = wait_for(lambda: redis_server.cli("LRANGE", "celery", "0", "-1"), timeout=30, what="the task message")
    assert "tasks.ingest_source" in message and "coingecko" in message
    assert secret not in message

    worker = processes("worker", env, "w1", "--loglevel=DEBUG")
    out, _ = cli.communicate(timeout=90)
    assert cli.returncode == 0, out
    assert "coingecko    succeeded" in out
    assert stub.calls_to(GECKO_PATH)[0]["headers"]["x-cg-demo-api-key"] == secret
    assert secret not in worker.output() and secret not in out


def test_ingest_async_wait_exits_non_zero_when_the_task_fails(
    celery_env: dict[str, str], processes: Callable[..., CeleryProcess], stub: StubUpstream
) -> None:
    stub.scripted[PAPRIKA_PATH].append((401, {}, b'{"error": "invalid api key"}'))
    processes("worker", celery_env, "w1")
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "ingest",
            "--source",
            "coinpaprika",
            "--async",
            "--wait",
            "--timeout",
            "60",
        ],
        cwd=ROOT,
        env=celery_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "coinpaprika: task " in result.stdout
    assert "HTTP 401" in result.stderr
    assert len(stub.calls_to(PAPRIKA_PATH)) == 1, "a permanent failure is not retried"


def test_ingest_async_wait_fails_naming_the_failure_when_its_retry_is_skipped_for_another_run(
    celery_env: dict[str, str], processes: Callable[..., CeleryProcess], stub: StubUpstream
) -> None:
    import psycopg2
    from django.db import connection

    from crypto.services.ingest.locks import _NAMESPACE, name_key
    from tests.conftest import database_url

    env = {**celery_env, "HTTP_MAX_ATTEMPTS": "1"}
    stub.scripted[PAPRIKA_PATH].append((503, {"Retry-After": "2"}, b'{"error": "busy"}'))  # retried in 2 s
    processes("worker", env, "w1")
    command = subprocess.Popen(
        [sys.executable, "manage.py", "ingest", "--source", "coinpaprika", "--async", "--wait", "--timeout", "60"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    other_run = psycopg2.connect(database_url(connection.settings_dict))  # another run holds the source
    try:
        wait_for(
            lambda: IngestionRun.objects.filter(status="failed").exists(), timeout=60, what="the failure", every=0.05
        )
        other_run.cursor().execute("SELECT pg_advisory_xact_lock(%s, %s)", [_NAMESPACE, name_key("ingest:coinpaprika")])
        out, err = command.communicate(timeout=90)
    finally:
        other_run.close()
        command.kill()
    assert command.returncode == 1, out + err
    assert "coinpaprika  skipped" in out and "succeeded" not in out
    assert "coinpaprika did not ingest" in err and "attempt 1 failed" in err and "503" in err
    assert "attempt 2 skipped" in err and "already being ingested" in err
    assert list(IngestionRun.objects.order_by("id").values_list("status", flat=True)) == ["failed", "skipped"]

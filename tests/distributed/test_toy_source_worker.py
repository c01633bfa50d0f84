"""The toy source (tests/toy/source.py) run by a real Celery worker: the worker knows it from its
settings alone (tests/toy/settings.py), and takes it from the broker like any source."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest

from crypto.models import IngestionRun, MarketQuote
from tests.distributed.conftest import send_task
from tests.processes import CeleryProcess, StubUpstream, wait_for
from tests.test_toy_source import TOY_BODY

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def test_a_worker_ingests_a_source_defined_in_one_module(
    celery_env: dict[str, str], processes: Callable[..., CeleryProcess], stub: StubUpstream
) -> None:
    stub.bodies[("/toy/prices", "")] = orjson.dumps(TOY_BODY)
    env = {**celery_env, "DJANGO_SETTINGS_MODULE": "tests.toy.settings", "TOY_BASE_URL": stub.base + "/toy"}
    processes("worker", env, "toy-worker")
    task_id = send_task(env["REDIS_URL"], "toy")

    def finished() -> IngestionRun | None:
        return IngestionRun.objects.filter(task_id=task_id).exclude(status=IngestionRun.Status.RUNNING).first()

    run = wait_for(finished, timeout=60, what="the worker to run the toy source")
    assert run.source == "toy" and run.status == IngestionRun.Status.SUCCEEDED, run.error
    assert MarketQuote.objects.filter(source="toy").count() == 2
    assert len(stub.calls_to("/toy/prices")) == 1

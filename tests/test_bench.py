"""The benchmarks cannot rot: each runs to the end in its quick mode (tiny sizes, seconds) and
prints its ratios. What they measure is `make bench`'s to say, never a timed assertion here."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.db import connection

from tests.conftest import database_url
from tests.processes import ROOT

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(300)]


@pytest.mark.parametrize(
    ("script", "labels"),
    [
        (
            "bench/api_bench.py",
            ["quotes page 1000 / page 1", "/stats at 1M / at 10k rows", "/health / a bare SELECT 1 view"],
        ),
        (
            "bench/backfill_bench.py",
            ["backfill / bare database work (records/s)", "backfill / one ORM save per record", "peak RSS"],
        ),
        ("bench/history_bench.py", ["2 workers / 1 (points/s)", "busiest window / budget (calls)"]),
    ],
)
def test_each_benchmark_runs_to_the_end_in_quick_mode_and_prints_its_ratios(script: str, labels: list[str]) -> None:
    env = {**os.environ, "DATABASE_URL": database_url(connection.settings_dict)}
    result = subprocess.run(
        [sys.executable, script, "--quick"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=280
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    ratios = result.stdout.split("Ratios (target):", 1)[-1]
    assert all(label in ratios for label in labels), result.stdout[-2000:]

"""The app's settings, serving one more view for the benchmarks: the baseline a health check is
held against (bench/urls.py)."""

from kasparro.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"

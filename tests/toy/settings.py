"""The project's settings with the toy source added: what a Celery worker of the toy tests runs with
(DJANGO_SETTINGS_MODULE=tests.toy.settings). In-process tests add the same values to `settings`."""

import os

from kasparro.settings import *  # noqa: F403
from kasparro.settings import INGEST_SOURCES

TOY_SETTINGS = {
    "INGEST_SOURCES": [*INGEST_SOURCES, "tests.toy.source.source"],
    "INGEST_INTERVAL_TOY": 60,
    "TOY_CALLS_PER_MINUTE": 100,
    "TOY_BASE_URL": os.environ.get("TOY_BASE_URL", "http://127.0.0.1:9/toy"),
}
globals().update(TOY_SETTINGS)

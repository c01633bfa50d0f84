"""What the ingestion commands do alike around their work."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from django.core.management.base import BaseCommand, CommandError

from crypto.services.ingest.lifecycle import RunNotRecorded


@contextlib.contextmanager
def command_session(command: BaseCommand, *, verbosity: int) -> Iterator[None]:
    """At a terminal the command's progress lines say what the service logs, so the logs are kept
    to warnings there; without one (cron, CI, a pipe) the runs are logged as every service logs
    them. A database that went away mid-run is one line, not a traceback."""
    crypto_logger = logging.getLogger("crypto")
    previous = crypto_logger.level
    if verbosity < 2 and command.stdout.isatty():
        crypto_logger.setLevel(logging.WARNING)
    try:
        yield
    except RunNotRecorded as exc:
        raise CommandError(str(exc)) from None
    finally:
        crypto_logger.setLevel(previous)

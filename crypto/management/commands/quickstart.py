"""`python manage.py quickstart`: what `make run` does, in one process.

With no DATABASE_URL it starts the embedded PostgreSQL (data in EMBEDDED_DB_DIR), then migrates
(creating the database), ingests every source (a bundled recorded response where a live fetch
fails, with `--fallback-file`) and serves on 127.0.0.1. Ctrl-C stops the web server and then the
database it started. One process rather than one per step: each step would start Django again.
"""

from __future__ import annotations

import signal
import socket
import sys
import threading
from contextlib import nullcontext
from importlib import import_module
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from crypto.services.monitor.metrics import metrics_files_clear
from kasparro.database import embedded_database_held
from kasparro.embedded_db import EmbeddedDatabaseError


class Command(BaseCommand):
    help = "Start the embedded database (with no DATABASE_URL), migrate, ingest every source and serve."
    requires_system_checks: list[str] = []  # migrate runs them

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8000, help="where to serve on 127.0.0.1 (default 8000)")
        parser.add_argument(
            "--fallback-file",
            metavar="SOURCE=PATH",
            action="append",
            default=[],
            help="as for ingest: a saved body to load when the live fetch of SOURCE fails",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # Checked first: runserver ends the process at once on a taken port, past any cleanup.
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as runserver binds
            try:
                probe.bind(("127.0.0.1", options["port"]))
            except OSError as exc:
                raise CommandError(f"127.0.0.1:{options['port']} is taken ({exc.strerror}): use --port") from exc
        # Stopped by a process manager or a closed terminal, it stops its database as on Ctrl-C.
        for stop in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(stop, _exit_on)
        # The web app's modules load while the database starts: neither waits for the other.
        loading = threading.Thread(target=_web_app_load)
        loading.start()
        try:
            held = embedded_database_held(say=self._say) if settings.EMBEDDED_DATABASE else nullcontext()
            with held:
                loading.join()
                metrics_files_clear()  # series of an earlier start's ended processes are not added to this one's
                call_command("migrate", interactive=False)
                call_command("ingest", source="all", fallback_file=options["fallback_file"])
                self._say(
                    f"Serving on http://127.0.0.1:{options['port']}/  (open it in a browser: the state of the system, "
                    "the dashboard, the API; scripts: /health, /data, /stats)"
                )
                call_command("runserver", f"127.0.0.1:{options['port']}", use_reloader=False, skip_checks=True)
        except EmbeddedDatabaseError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            loading.join()

    def _say(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()


def _exit_on(signum: int, frame: FrameType | None) -> None:
    sys.exit(128 + signum)


def _web_app_load() -> None:
    for module in (settings.ROOT_URLCONF, "crypto.management.commands.ingest"):
        import_module(module)

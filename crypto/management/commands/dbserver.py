"""`python manage.py dbserver {start,stop,status,psql,run}`: the embedded PostgreSQL server.

`run -- COMMAND` is what `make run` does: it starts the embedded server (unless DATABASE_URL names
another one), runs COMMAND with DATABASE_URL pointing at it, and stops the server when COMMAND
ends or Ctrl-C stops it. `start` and `stop` keep it running across commands, for the workers,
beat and Flower in other terminals. `run --throwaway` uses a fresh cluster that is removed
afterwards (`make test` on a machine without a PostgreSQL server).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from argparse import REMAINDER
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from kasparro import embedded_db
from kasparro.database import embedded_database_held, embedded_server, embedded_shown, embedded_where
from kasparro.embedded_db import EmbeddedDatabaseError

# After Ctrl-C the terminal has already signalled the command; this long for it to end by itself.
_GRACE_SECONDS = 10


class Command(BaseCommand):
    help = "Start, stop or inspect the embedded PostgreSQL server, or run a command beside it."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="{start,stop,status,psql,run}")
        actions.add_parser("start", help="start the server (creating its cluster the first time) and keep it running")
        actions.add_parser("stop", help="stop the server")
        actions.add_parser("status", help="say whether the server runs, where, and how to connect; 1 if it does not")
        psql = actions.add_parser("psql", help="psql (from the same wheel) on the project's database")
        psql.add_argument("args", nargs=REMAINDER)
        run = actions.add_parser(
            "run", help="run a command with DATABASE_URL set to the embedded server, and stop the server after it"
        )
        run.add_argument("--throwaway", action="store_true", help="a fresh cluster on a free port, removed after")
        run.add_argument("command", nargs=REMAINDER, help="the command, after --")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        try:
            if action == "run":
                command = options["command"][1:] if options["command"][:1] == ["--"] else options["command"]
                if not command:
                    raise CommandError("dbserver run needs a command: dbserver run -- COMMAND [ARGS]")
                sys.exit(self._run(command, throwaway=options["throwaway"]))
            if action == "psql":
                sys.exit(self._psql(options["args"]))
            server = embedded_server()
            if action == "start":
                server.start()
                self.stdout.write(embedded_where(server))
            elif action == "stop":
                running = server.running_pid() is not None
                embedded_db.release(server)
                self.stdout.write("Stopped the embedded PostgreSQL" if running else "It was not running")
            elif action == "status":
                if server.running_pid() is None:
                    self.stdout.write(
                        f"The embedded PostgreSQL is not running (data: {embedded_shown(server.data_dir)})"
                    )
                    sys.exit(1)
                self.stdout.write(embedded_where(server))
        except EmbeddedDatabaseError as exc:
            raise CommandError(str(exc)) from exc

    def _run(self, command: list[str], *, throwaway: bool) -> int:
        if throwaway:
            with embedded_db.throwaway() as server:
                self.stderr.write(f"dbserver: a throwaway PostgreSQL {server.version()} on 127.0.0.1:{server.port}")
                return _supervise(command, env={**os.environ, "DATABASE_URL": server.url()})
        if not settings.EMBEDDED_DATABASE:
            return _supervise(command, env=dict(os.environ))  # DATABASE_URL names the database
        with embedded_database_held(say=self.stdout.write) as server:
            return _supervise(command, env={**os.environ, "DATABASE_URL": server.url()})

    def _psql(self, args: list[str]) -> int:
        # Django's own psql arguments (host, port, user, database, password in the environment),
        # run with the wheel's psql: a machine with no PostgreSQL has no other.
        args_, env = connection.client.settings_to_cmd_args_env(connection.settings_dict, args)
        command = [str(embedded_db.bin_dir() / "psql"), *args_[1:]]
        return subprocess.run(command, env={**os.environ, **(env or {})}).returncode


def _supervise(command: list[str], *, env: dict[str, str]) -> int:
    """Run the command to its end. A Ctrl-C at the terminal reaches it directly (same process
    group): give it time to stop by itself, then terminate it. SIGTERM is passed on at once."""
    try:
        child = subprocess.Popen(command, env=env)
    except OSError as exc:
        raise CommandError(f"could not run {command[0]}: {exc.strerror}") from exc
    interrupted: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        interrupted.append(signum)
        if signum != signal.SIGINT:
            child.send_signal(signum)

    handlers = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        waited = 0.0
        while True:
            try:
                code = child.wait(timeout=0.5)
                return 130 if interrupted and code < 0 else code
            except subprocess.TimeoutExpired:
                if interrupted:
                    waited += 0.5
                    if waited >= _GRACE_SECONDS:
                        child.terminate() if waited < 2 * _GRACE_SECONDS else child.kill()
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)

"""`python manage.py backfill --source {coingecko,coinpaprika} --coins top:N|ID,ID,... --since DATE [--until DATE]
[--async [--wait]]`

Fetches the history of those coins from the upstream API, window by window, under the source's
shared rate budget: with `--async` as a job of one Celery task per window (crypto/services/ingest/jobs.py),
which resumes when started again and which `--wait` follows with a progress bar; without it in
this process: each window's body is stored raw and its points become
quotes at their own times, marked as history. Prints a line per window and a summary; exit status
0 when every window loaded, 1 otherwise with each failed window's reason on stderr. Started again
it loads the same windows again, which changes nothing already loaded (crypto/services/ingest/history.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from crypto.management.jobs import job_follow
from crypto.management.terminal import command_session
from crypto.models import IngestionRun
from crypto.services.ingest.history import HistoryProgress, history_coins, history_load, history_plan, history_sources
from crypto.services.ingest.jobs import history_job_start
from crypto.sources.body import SourceError
from crypto.sources.history import Window


def moment(text: str) -> datetime:
    """A date (`2025-01-31`, midnight UTC) or a date and time (`2025-01-31T12:00`, UTC unless it says)."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CommandError(f"{text!r} is not a date: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)") from None
    if len(text.strip()) == 10:
        parsed = datetime.combine(parsed.date(), time(0))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = "Fetch coins' history from an upstream API, window by window, and load it as quotes marked as history."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--source", required=True, choices=history_sources(), help="the upstream to ask")
        parser.add_argument(
            "--coins",
            required=True,
            help="top:N (the source's N first by market cap in its latest data) or upstream ids: bitcoin,ethereum",
        )
        parser.add_argument("--since", required=True, help="the first day, YYYY-MM-DD (or YYYY-MM-DDTHH:MM), UTC")
        parser.add_argument("--until", help="the end, YYYY-MM-DD (or YYYY-MM-DDTHH:MM), UTC; default: now")
        parser.add_argument(
            "--async",
            dest="run_async",
            action="store_true",
            help="spread the windows across the Celery workers, one task each, as a job that resumes when "
            "started again with the same request",
        )
        parser.add_argument("--wait", action="store_true", help="with --async: follow the job with a progress bar")
        parser.add_argument(
            "--timeout", type=float, default=3600.0, help="with --wait: seconds to wait at most (default 3600)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        with command_session(self, verbosity=options["verbosity"]):
            self._handle(**options)

    def _handle(self, **options: Any) -> None:
        source = options["source"]
        now = timezone.now()
        since = moment(options["since"])
        until = min(moment(options["until"]), now) if options["until"] else now
        try:
            coins = history_coins(source=source, coins=options["coins"])
            windows = history_plan(source=source, coins=coins, since=since, until=until)
        except SourceError as exc:
            raise CommandError(str(exc)) from None
        if options["wait"] and not options["run_async"]:
            raise CommandError("--wait goes with --async (without it the command already waits)")
        self.stdout.write(
            f"{source}: history of {len(coins)} coin(s) from {since:%Y-%m-%d %H:%M} to {until:%Y-%m-%d %H:%M} UTC, "
            f"{len(windows)} window(s) ..."
        )
        if options["run_async"]:
            request = f"--coins {options['coins']} --since {options['since']}" + (
                f" --until {options['until']}" if options["until"] else ""
            )
            try:
                job, created = history_job_start(
                    source=source, windows=windows, request=request, until=options["until"]
                )
            except SourceError as exc:
                raise CommandError(str(exc)) from None
            job_follow(self, job=job, created=created, wait=options["wait"], timeout=options["timeout"])
            return
        width = len(str(len(windows)))

        def on_window(progress: HistoryProgress, window: Window, run: IngestionRun) -> None:
            number = progress.windows_done + progress.windows_failed
            head = f"  [{number:>{width}}/{progress.windows_total}] {window}: "
            if run.status == IngestionRun.Status.SUCCEEDED:
                unchanged = ", unchanged since stored" if run.raw_duplicates else ""
                eta = progress.eta_seconds
                self.stdout.write(
                    f"{head}{run.records_fetched:,} points, {run.rows_upserted:,} rows upserted{unchanged} "
                    f"({run.duration_seconds or 0:.1f}s; ETA {'-' if eta is None else f'{eta:.0f}s'})"
                )
            else:
                self.stdout.write(self.style.ERROR(f"{head}failed (run #{run.pk}): {run.error}"))

        progress = history_load(source=source, windows=windows, on_window=on_window)
        style = self.style.SUCCESS if not progress.windows_failed else self.style.WARNING
        self.stdout.write(
            style(
                f"\n{source}: {progress.windows_done} of {progress.windows_total} windows loaded, "
                f"{progress.windows_failed} failed; {progress.records:,} points, {progress.rows_upserted:,} rows "
                f"upserted ({progress.records_per_second:,.0f} points/s)"
            )
        )
        if progress.failures:
            raise CommandError(
                "\n".join(f"{window} failed: {reason}" for window, reason in progress.failures)
                + "\nthe other windows are loaded; run the command again to retry these (loaded windows change nothing)"
            )

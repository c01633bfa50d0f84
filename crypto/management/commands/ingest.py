"""`python manage.py ingest --source {coingecko,coinpaprika,csv,all} [--file PATH] [--async [--wait]]`

Runs ingestion now, printing progress and a summary per source, or (`--async`) hands it to the
Celery workers and prints the task ids; `--wait` then follows the tasks to their end. Exit status
0 when every asked source succeeded (or another run already held it), 1 otherwise with the
reasons on stderr.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from crypto.management.jobs import job_follow
from crypto.management.terminal import command_session
from crypto.models import IngestionRun, LoadedFile
from crypto.services.ingest.backfill import BackfillProgress, backfill_paths, backfill_run
from crypto.services.ingest.enqueue import ingestion_enqueue, task_attempts_wait
from crypto.services.ingest.jobs import archive_job_start
from crypto.services.ingest.run import ingestion_run, saved_file
from crypto.sources import source_names
from crypto.sources.body import SourceError


class Command(BaseCommand):
    help = "Ingest market data from one source or all of them, now, and print a summary."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--source",
            choices=[*source_names(), "all"],
            default="all",
            help="which source to ingest (default: all)",
        )
        parser.add_argument(
            "--file",
            metavar="PATH",
            help="load saved upstream bodies (JSON, or CSV for --source csv; gzip too) through the same "
            "pipeline instead of fetching: a file, a folder or a quoted glob, oldest first, one run per file; "
            "started again it skips what was loaded",
        )
        parser.add_argument(
            "--fallback-file",
            metavar="SOURCE=PATH",
            action="append",
            default=[],
            help="when a live fetch of SOURCE fails, load this saved body instead and "
            "say so (used by `make run` on a machine without internet)",
        )

        parser.add_argument(
            "--async",
            dest="run_async",
            action="store_true",
            help="enqueue one task per source for the Celery workers and print the task ids; with --file, "
            "one task per file, as a job that resumes when started again",
        )
        parser.add_argument(
            "--wait", action="store_true", help="with --async: wait for the tasks and exit with their status"
        )
        parser.add_argument(
            "--timeout", type=float, default=900.0, help="with --wait: seconds to wait at most (default 900)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        with command_session(self, verbosity=options["verbosity"]):
            self._handle(**options)

    def _handle(self, **options: Any) -> None:
        source, file = options["source"], options["file"]
        if file and source == "all":
            raise CommandError("--file needs one --source: say which upstream the saved body came from")
        sources = source_names() if source == "all" else (source,)
        trigger = IngestionRun.Trigger.FILE if file else IngestionRun.Trigger.CLI
        fallbacks = self._fallbacks(options["fallback_file"])
        if options["wait"] and not options["run_async"]:
            raise CommandError("--wait goes with --async (without it the command already waits)")
        if options["run_async"]:
            if file:
                self._archive_job(source, file, wait=options["wait"], timeout=options["timeout"])
                return
            attempts = self._enqueue(sources, wait=options["wait"], timeout=options["timeout"])
            self._summary([runs[-1] for runs in attempts])
            self._fail_unless_done(attempts)
            return

        if file:
            self._backfill(source, file)
            return

        runs = []
        for name in sources:
            self.stdout.write(f"{name}: {'loading ' + file if file else 'fetching'} ...")
            run = ingestion_run(source=name, trigger=trigger, progress=self._progress)
            if run.status == IngestionRun.Status.FAILED and not file and name in fallbacks:
                self.stdout.write(
                    self.style.WARNING(
                        f"  {name}: live fetch failed, so loading the bundled recorded response "
                        f"{fallbacks[name]} instead: this is saved data, not today's market"
                    )
                )
                run = ingestion_run(
                    source=name,
                    trigger=IngestionRun.Trigger.FILE,
                    origin=saved_file(path=fallbacks[name]),
                    progress=self._progress,
                )
            self._report_rejected(run)
            runs.append(run)

        self._summary(runs)
        self._fail_if_any(runs)

    def _summary(self, runs: list[IngestionRun]) -> None:
        if not runs:
            return
        self.stdout.write("")
        self.stdout.write(
            f"{'source':<12} {'status':<10} {'fetched':>8} {'stored':>7} {'unchanged':>9} "
            f"{'upserted':>9} {'rejected':>9} {'seconds':>8}"
        )
        for run in runs:
            style = (
                self.style.SUCCESS
                if run.status == IngestionRun.Status.SUCCEEDED
                else (self.style.WARNING if run.status == IngestionRun.Status.SKIPPED else self.style.ERROR)
            )
            self.stdout.write(
                style(
                    f"{run.source:<12} {run.status:<10} {run.records_fetched:>8} {run.raw_stored:>7} "
                    f"{run.raw_duplicates:>9} {run.rows_upserted:>9} {run.records_rejected:>9} "
                    f"{run.duration_seconds or 0:>8.2f}"
                )
            )

    @staticmethod
    def _fail_if_any(runs: list[IngestionRun]) -> None:
        failed = [run for run in runs if run.status == IngestionRun.Status.FAILED]
        if failed:
            raise CommandError("\n".join(f"{run.source} failed (run #{run.pk}): {run.error}" for run in failed))

    @staticmethod
    def _fail_unless_done(attempts: list[list[IngestionRun]]) -> None:
        """A task whose last attempt did not succeed did not ingest: a retry skipped because
        another run held the source is no success, and the failure before it is the reason."""
        undone = [runs for runs in attempts if runs[-1].status != IngestionRun.Status.SUCCEEDED]
        if undone:
            raise CommandError(
                "\n".join(
                    f"{runs[-1].source} did not ingest (task {runs[-1].task_id}): "
                    + "; ".join(
                        f"attempt {number} {run.status}: {run.error}" for number, run in enumerate(runs, start=1)
                    )
                    for runs in undone
                )
            )

    def _report_rejected(self, run: IngestionRun) -> None:
        for problem in run.problems[:20]:
            self.stderr.write(f"  {run.source}: rejected {problem}")
        if run.records_rejected > 20:
            self.stderr.write(
                f"  {run.source}: ... and {run.records_rejected - 20} more rejected records "
                f"(see run #{run.pk} in the admin)"
            )

    def _progress(self, message: str) -> None:
        self.stdout.write(f"  {message}")

    @staticmethod
    def _fallbacks(values: list[str]) -> dict[str, str]:
        fallbacks = {}
        for value in values:
            source, sep, path = value.partition("=")
            if not sep or source not in source_names() or not path:
                raise CommandError(
                    f"--fallback-file {value!r}: expected SOURCE=PATH with SOURCE one of {', '.join(source_names())}"
                )
            fallbacks[source] = path
        return fallbacks

    def _enqueue(self, sources: tuple[str, ...], *, wait: bool, timeout: float) -> list[list[IngestionRun]]:
        """Send one task per source; with `wait`, each task's attempts once it has ended."""
        if not settings.REDIS_URL:
            self.stdout.write("No REDIS_URL: no broker, so each task runs here, in this process.")
        try:
            queued = ingestion_enqueue(sources=list(sources), trigger=IngestionRun.Trigger.CLI)
        except Exception as exc:  # the broker refused or is unreachable
            raise CommandError(f"could not enqueue: {exc}") from exc
        task_ids = {}
        for item in queued:
            task_ids[item["source"]] = item["task_id"]
            if item["error"]:
                self.stderr.write(f"{item['source']}: {item['error']}")
            self.stdout.write(f"{item['source']}: task {item['task_id'] or '(ran in process)'}")
        failed_here = [item for item in queued if item["error"]]
        if failed_here:
            raise CommandError("\n".join(f"{item['source']} failed: {item['error']}" for item in failed_here))
        if not wait:
            return []
        self.stdout.write(f"Waiting for {len(task_ids)} task(s), at most {timeout:.0f}s ...")
        attempts = task_attempts_wait(task_ids=[t for t in task_ids.values() if t], timeout=timeout)
        missing = [name for name, task_id in task_ids.items() if task_id and task_id not in attempts]
        if missing:
            raise CommandError(
                f"timed out after {timeout:.0f}s waiting for {', '.join(missing)}: is a worker running "
                "(celery -A kasparro worker)?"
            )
        return list(attempts.values())

    def _archive_job(self, source: str, target: str, *, wait: bool, timeout: float) -> None:
        """The archive's files as a job of one task per file for the workers (which must see the
        files: the same machine or a shared volume); the same archive again resumes the job."""
        try:
            files = backfill_paths(source=source, target=target)
        except SourceError as exc:
            raise CommandError(str(exc)) from None
        job, created = archive_job_start(source=source, files=files, request=f"--file {target}")
        job_follow(self, job=job, created=created, wait=wait, timeout=timeout)

    def _backfill(self, source: str, target: str) -> None:
        try:
            files = backfill_paths(source=source, target=target)
        except SourceError as exc:
            raise CommandError(str(exc)) from None
        if len(files) == 1:
            self.stdout.write(f"{source}: loading {files[0]} ...")
        else:
            self.stdout.write(f"{source}: loading {len(files)} files from {target}, oldest first ...")

        def on_file(progress: BackfillProgress, done: IngestionRun | LoadedFile) -> None:
            if isinstance(done, LoadedFile):
                when = f"{done.loaded_at:%Y-%m-%d %H:%M}"
                if len(files) == 1:
                    self.stdout.write(f"{source}: already loaded on {when} (run #{done.run_id}); nothing to do")
                    return
            elif len(files) == 1:
                return
            eta = progress.eta_seconds
            self.stderr.write(
                f"\r  files {progress.files_done}/{progress.files_total}  records {progress.records:,}  "
                f"{progress.records_per_second:,.0f} records/s  ETA {'-' if eta is None else f'{eta:.0f}s'}   ",
                ending="",
            )
            if isinstance(done, IngestionRun) and done.status == IngestionRun.Status.FAILED:
                self.stderr.write(f"\n  {source}: {done.error}")

        progress = backfill_run(source=source, files=files, on_file=on_file)
        if len(files) > 1:
            self.stderr.write("")
        runs = progress.runs
        for run in runs:
            self._report_rejected(run)
        if len(files) == 1:
            if runs:
                self._summary(runs)
        else:
            count = {status: sum(r.status == status for r in runs) for status in IngestionRun.Status.values}
            self.stdout.write(
                f"\n{source}: {len(files)} files, {progress.records:,} records loaded in "
                f"{time.monotonic() - progress.started:.1f}s ({progress.records_per_second:,.0f} records/s): "
                f"{len(progress.already_loaded)} files already loaded, skipped; "
                f"{count['succeeded']} succeeded ({sum(r.raw_stored for r in runs)} bodies stored, "
                f"{sum(r.raw_duplicates for r in runs)} already stored), {count['failed']} failed, "
                f"{count['skipped']} skipped; {sum(r.rows_upserted for r in runs):,} rows upserted"
            )
        self._fail_if_any(runs)

"""`python manage.py ingest --source {coingecko,coinpaprika,csv,all} [--file PATH]`

Runs ingestion now, printing progress and a summary per source. Exit status 0 when every asked
source succeeded (or another run already held it), 1 otherwise with the reasons on stderr.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from crypto.models import IngestionRun
from crypto.services.ingestion import ingestion_run
from crypto.sources import SOURCE_NAMES


class Command(BaseCommand):
    help = "Ingest market data from one source or all of them, now, and print a summary."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--source",
            choices=[*SOURCE_NAMES, "all"],
            default="all",
            help="which source to ingest (default: all)",
        )
        parser.add_argument(
            "--file",
            metavar="PATH",
            help="load a saved upstream body (JSON, or CSV for --source csv) through the "
            "same pipeline instead of fetching",
        )
        parser.add_argument(
            "--fallback-file",
            metavar="SOURCE=PATH",
            action="append",
            default=[],
            help="when a live fetch of SOURCE fails, load this saved body instead and "
            "say so (used by `make run` on a machine without internet)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["verbosity"] < 2:
            # The progress lines below say what the service logs; keep the terminal readable.
            logging.getLogger("crypto").setLevel(logging.WARNING)
        source, file = options["source"], options["file"]
        if file and source == "all":
            raise CommandError("--file needs one --source: say which upstream the saved body came from")
        sources = SOURCE_NAMES if source == "all" else (source,)
        trigger = IngestionRun.Trigger.FILE if file else IngestionRun.Trigger.CLI
        fallbacks = self._fallbacks(options["fallback_file"])

        runs = []
        for name in sources:
            self.stdout.write(f"{name}: {'loading ' + file if file else 'fetching'} ...")
            run = ingestion_run(source=name, trigger=trigger, file=file, progress=self._progress)
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
                    file=fallbacks[name],
                    progress=self._progress,
                )
            for problem in run.problems[:20]:
                self.stderr.write(f"  {name}: rejected {problem}")
            if run.records_rejected > 20:
                self.stderr.write(
                    f"  {name}: ... and {run.records_rejected - 20} more rejected records "
                    f"(see run #{run.pk} in the admin)"
                )
            runs.append(run)

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
        failed = [run for run in runs if run.status == IngestionRun.Status.FAILED]
        if failed:
            raise CommandError(
                "\n".join(f"{run.source} failed (run #{run.pk}): {run.error}" for run in failed)
            )

    def _progress(self, message: str) -> None:
        self.stdout.write(f"  {message}")

    @staticmethod
    def _fallbacks(values: list[str]) -> dict[str, str]:
        fallbacks = {}
        for value in values:
            source, sep, path = value.partition("=")
            if not sep or source not in SOURCE_NAMES or not path:
                raise CommandError(
                    f"--fallback-file {value!r}: expected SOURCE=PATH with SOURCE one of "
                    f"{', '.join(SOURCE_NAMES)}"
                )
            fallbacks[source] = path
        return fallbacks

"""`python manage.py renormalize [--source S] [--since DATE]`: rebuild assets and quotes from the
stored raw bodies, with no network, in bounded batches, with progress."""

from __future__ import annotations

import time
from datetime import UTC
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.dateparse import parse_date, parse_datetime

from crypto.services.ingest.renormalize import RenormalizeProgress, renormalize_run
from crypto.sources import source_names


class Command(BaseCommand):
    help = "Rebuild the normalized rows from the stored raw bodies (no network)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--source", choices=source_names(), help="one source (default: all)")
        parser.add_argument("--since", help="only bodies fetched at or after this date or time (ISO 8601, UTC)")
        parser.add_argument("--batch", type=int, default=20, help="bodies per transaction (default 20)")

    def handle(self, *args: Any, **options: Any) -> None:
        since = None
        if options["since"]:
            text = options["since"]
            try:
                since = parse_datetime(text) or (
                    parse_datetime(f"{text}T00:00:00") if parse_date(text) is not None else None
                )
            except ValueError:
                since = None
            if since is None:
                raise CommandError(f"--since {text!r}: expected an ISO 8601 date or time, e.g. 2025-01-31")
            if since.tzinfo is None:
                since = since.replace(tzinfo=UTC)  # times without a zone are UTC, like everything here
        if options["batch"] < 1:
            raise CommandError("--batch must be 1 or more")
        started = time.monotonic()

        def on_batch(progress: RenormalizeProgress) -> None:
            rate = progress.records / max(time.monotonic() - started, 1e-9)
            self.stderr.write(
                f"\r  bodies {progress.bodies_done}/{progress.bodies_total}  records {progress.records:,}  "
                f"{rate:,.0f} records/s   ",
                ending="",
            )

        progress = renormalize_run(
            source=options["source"], since=since, batch_bodies=options["batch"], on_batch=on_batch
        )
        self.stderr.write("")
        self.stdout.write(
            f"Renormalized {progress.bodies_done} bodies, {progress.records:,} records: "
            f"{progress.rows_upserted:,} rows upserted, {progress.rejected:,} rejected, "
            f"in {time.monotonic() - started:.1f}s"
        )

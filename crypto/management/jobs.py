"""How the commands hand a backfill job to the workers and follow it (`backfill --async`,
`ingest --file ... --async`): windows sent, then, with `--wait`, a progress bar until every window
has ended, and the exit status the job earned."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from crypto.models import BackfillJob, BackfillWindow
from crypto.services.ingest.jobs import JobProgress, job_enqueue, job_progress

BAR_WIDTH = 30


def progress_line(progress: JobProgress) -> str:
    ended = progress.done + progress.failed
    filled = round(BAR_WIDTH * ended / progress.total) if progress.total else BAR_WIDTH
    eta = progress.eta_seconds
    return (
        f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {ended}/{progress.total} windows, {progress.failed} failed, "
        f"{progress.running} running  {progress.records:,} records  {progress.records_per_second:,.0f} records/s  "
        f"ETA {'-' if eta is None else f'{eta:.0f}s'}"
    )


def job_follow(command: BaseCommand, *, job: BackfillJob, created: bool, wait: bool, timeout: float) -> None:
    before = job_progress(job)
    if created:
        command.stdout.write(f"{job.source}: job #{job.pk}, {before.total} window(s)")
    else:
        command.stdout.write(
            f"{job.source}: job #{job.pk} resumes: {before.done} of {before.total} window(s) already done, "
            "not asked again"
        )
    if not settings.REDIS_URL:
        command.stdout.write("No REDIS_URL: no broker, so each window runs here, in this process.")
    try:
        sent = job_enqueue(job)
    except Exception as exc:  # the broker refused or is unreachable
        raise CommandError(
            f"could not send the windows of job #{job.pk} to the workers ({exc}); the job is recorded: "
            "the same command resumes it once the broker is back"
        ) from exc
    if settings.REDIS_URL:
        command.stdout.write(f"{sent} window task(s) sent to the workers' history queue")
        if not wait:
            command.stdout.write(
                "Follow it with the same command and --wait, in the admin (backfill jobs) or at "
                f"/api/backfills/{job.pk}/"
            )
            return
    deadline = time.monotonic() + timeout
    while True:
        progress = job_progress(job)
        command.stderr.write(f"\r  {progress_line(progress)}   ", ending="")
        if progress.finished or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    command.stderr.write("")
    if not progress.finished:
        raise CommandError(
            f"timed out after {timeout:.0f}s with {progress.left} window(s) of job #{job.pk} left: is a worker "
            "running (celery -A kasparro worker)? The job goes on; --wait again follows it"
        )
    command.stdout.write(
        f"{job.source}: job #{job.pk}: {progress.done} of {progress.total} window(s) done, {progress.failed} failed; "
        f"{progress.records:,} records, {progress.rows_upserted:,} rows upserted"
    )
    if progress.failed:
        failed = job.windows.filter(status=BackfillWindow.Status.FAILED).order_by("position")
        lines = [f"{window.what} failed: {window.error}" for window in failed[:20]]
        if progress.failed > 20:
            lines.append(f"... and {progress.failed - 20} more (see job #{job.pk} in the admin)")
        raise CommandError(
            "\n".join(lines) + "\nthe other windows are loaded; start the same command again to retry these"
        )

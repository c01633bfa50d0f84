"""Ingestion: the runs, the raw upstream bodies they fetched (table raw_crypto_data), the files
they loaded, and the per-source totals and schedules kept beside them."""

from __future__ import annotations

from django.db import models

from crypto.sources import source_choices

# Which sources exist is configuration (INGEST_SOURCES), not schema: the choices are read when used.
SOURCE_NAME_LENGTH = 16


class IngestionRun(models.Model):
    class Trigger(models.TextChoices):
        CLI = "cli", "command line"
        TASK = "task", "Celery task"
        ADMIN = "admin", "admin action"
        API = "api", "API request"
        FILE = "file", "saved file"
        HISTORY = "history", "history backfill"

    class ErrorKind(models.TextChoices):
        NONE = "", "no error"
        # Worth retrying later (throttled, upstream or database away); permanent: fix something first.
        TRANSIENT = "transient"
        PERMANENT = "permanent"

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        # Another run of the same source held the lock; this one wrote nothing.
        SKIPPED = "skipped"

    source = models.CharField(max_length=SOURCE_NAME_LENGTH, choices=source_choices)
    trigger = models.CharField(max_length=8, choices=Trigger.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    task_id = models.CharField(max_length=64, blank=True, default="")
    records_fetched = models.PositiveIntegerField(default=0)
    raw_stored = models.PositiveIntegerField(default=0, help_text="new bodies stored")
    raw_duplicates = models.PositiveIntegerField(default=0, help_text="bodies already stored")
    rows_upserted = models.PositiveIntegerField(default=0)
    records_rejected = models.PositiveIntegerField(default=0)
    # The first rejected records with their reasons (`line 40: ...`), capped to keep rows small.
    problems = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True, default="")
    # transient: worth retrying later (throttled, upstream down); permanent: fix something first.
    error_kind = models.CharField(max_length=10, blank=True, default="", choices=ErrorKind.choices)
    # Set by the task when it will try this run's work again (a transient failure).
    retry_scheduled = models.BooleanField(default=False)
    # Against the source's previous successful run: counts, assets appeared/gone, duration.
    comparison = models.JSONField(default=dict, blank=True)
    # Anomalies found after the run: [{"kind": ..., "message": ...}].
    flags = models.JSONField(default=list, blank=True)
    # When the newest body of a successful run was fetched (a saved file's: when it was saved):
    # the source's latest dataset is the one with the newest data, not the latest run.
    data_fetched_at = models.DateTimeField(null=True, blank=True)
    bodies: models.ManyToManyField[RawBody, RunBody] = models.ManyToManyField(
        "RawBody", through="RunBody", related_name="runs"
    )

    class Meta:
        db_table = "ingestion_run"
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["source", "status", "-started_at"], name="run_source_status_started"),
            models.Index(fields=["source", "-started_at"], name="run_source_started"),
            models.Index(fields=["-started_at", "-id"], name="run_started_id"),
            models.Index(fields=["task_id"], name="run_task_id"),
            models.Index(
                fields=["source", "-data_fetched_at", "-id"],
                condition=models.Q(status="succeeded", data_fetched_at__isnull=False),
                name="run_source_newest_data",
            ),
            models.Index(
                fields=["-data_fetched_at", "-id"],
                condition=models.Q(status="succeeded", data_fetched_at__isnull=False),
                name="run_newest_data",
            ),
        ]

    # Seconds the upstream asked us to wait after a transient failure; for the caller, not stored.
    retry_after: float | None = None

    def __str__(self) -> str:
        return f"{self.source} run #{self.pk} ({self.status})"

    @property
    def flagged(self) -> bool:
        return bool(self.flags)

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None or self.started_at is None:
            return None
        return round((self.finished_at - self.started_at).total_seconds(), 3)


class RawBody(models.Model):
    """One upstream response body as received: a CoinGecko page, a CoinPaprika /tickers call,
    a CSV chunk. Stored once per source: a body with the same content hash is not stored again."""

    source = models.CharField(max_length=SOURCE_NAME_LENGTH, choices=source_choices)
    data = models.JSONField()
    fetched_at = models.DateTimeField()
    # sha256 of the body in canonical JSON (sorted keys, compact): formatting does not matter.
    content_hash = models.CharField(max_length=64)
    record_count = models.PositiveIntegerField()
    request = models.CharField(max_length=2000, help_text="URL asked (never with a key) or file read")
    position = models.PositiveIntegerField(default=1, help_text="page or chunk number")
    run = models.ForeignKey(
        IngestionRun,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="stored_bodies",
        help_text="the run that first stored it",
    )
    # Field paths and JSON types over its records (crypto/sources/fingerprint.py).
    fingerprint = models.JSONField(null=True, blank=True)
    newest_record_at = models.DateTimeField(
        null=True, blank=True, help_text="the newest upstream timestamp among its valid records: how old its data is"
    )
    history_of = models.CharField(
        max_length=200,
        blank=True,
        default="",
        db_default="",
        help_text="the upstream id of the coin whose history this body is (`manage.py backfill`); blank for the rest",
    )

    class Meta:
        db_table = "raw_crypto_data"
        verbose_name = "raw upstream body"
        verbose_name_plural = "raw upstream bodies"
        ordering = ["-fetched_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["source", "content_hash"], name="raw_unique_source_content"),
        ]
        indexes = [
            models.Index(fields=["source", "-fetched_at"], name="raw_source_fetched"),
            models.Index(fields=["-fetched_at", "-id"], name="raw_fetched_id"),
            # The previous body at a position, for schema drift (crypto/services/ingest/validation.py).
            models.Index(
                fields=["source", "position", "-id"],
                condition=models.Q(fingerprint__isnull=False),
                name="raw_source_position_id",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.source} body #{self.pk} ({self.record_count} records)"


class RunBody(models.Model):
    """Which bodies a run fetched, including ones already stored by an earlier run: a run's
    dataset is all of them, even when none was new."""

    run = models.ForeignKey(IngestionRun, on_delete=models.CASCADE)
    raw = models.ForeignKey(RawBody, on_delete=models.CASCADE)
    position = models.PositiveIntegerField()
    fetched_at = models.DateTimeField()

    class Meta:
        db_table = "ingestion_run_body"
        constraints = [models.UniqueConstraint(fields=["run", "raw"], name="run_body_unique")]

    def __str__(self) -> str:
        return f"run #{self.run_id} body #{self.raw_id}"


class LoadedFile(models.Model):
    """A saved body file that a run loaded, known by the sha256 of its bytes: a backfill started
    again skips it without parsing it. Written in the run's transaction, so a file whose run failed
    is not marked. Only a shortcut: bodies are still stored once per content hash."""

    source = models.CharField(max_length=SOURCE_NAME_LENGTH, choices=source_choices)
    digest = models.CharField(max_length=64, help_text="sha256 of the file's bytes")
    path = models.CharField(max_length=2000, help_text="where it was loaded from")
    size = models.PositiveBigIntegerField()
    records = models.PositiveIntegerField(default=0)
    run = models.ForeignKey(IngestionRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="files")
    loaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "loaded_file"
        ordering = ["-loaded_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["source", "digest"], name="loaded_file_unique_source_digest")]

    def __str__(self) -> str:
        return f"{self.source} file {self.path}"


class SourceSchedule(models.Model):
    """The interval and enabled flag last applied to a source's beat schedule from settings, so
    `migrate` changes the schedule only when a setting changed, never undoing an admin edit."""

    source = models.CharField(max_length=SOURCE_NAME_LENGTH, choices=source_choices, unique=True)
    applied_interval_seconds = models.PositiveIntegerField()
    # False while the source is not configured (the csv source without CSV_SOURCE_PATH).
    applied_enabled = models.BooleanField(default=True)

    class Meta:
        db_table = "source_schedule"

    def __str__(self) -> str:
        return f"{self.source} every {self.applied_interval_seconds}s (from settings)"


class SourceTotals(models.Model):
    """Running totals of the raw table per source, kept by the same transaction that stores a body,
    so /stats reads one small row per source however large the raw table grows."""

    source = models.CharField(max_length=SOURCE_NAME_LENGTH, choices=source_choices, unique=True)
    raw_rows = models.PositiveBigIntegerField(default=0)
    records = models.PositiveBigIntegerField(default=0)
    quarantined = models.PositiveBigIntegerField(default=0)
    first_fetched_at = models.DateTimeField(null=True, blank=True)
    last_fetched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "source_totals"
        verbose_name_plural = "source totals"

    def __str__(self) -> str:
        return f"{self.source}: {self.raw_rows} bodies, {self.records} records"


class BackfillJob(models.Model):
    """A backfill spread across the Celery workers, one task per window: a window of one coin's
    history from an upstream API, or one file of an archive. Started again with the same request,
    the job resumes: its windows done are not asked again."""

    class Kind(models.TextChoices):
        HISTORY = "history", "history from the API"
        ARCHIVE = "archive", "archive of saved files"

    source = models.CharField(max_length=SOURCE_NAME_LENGTH, choices=source_choices)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    request = models.CharField(max_length=2000, help_text="what was asked: the coins and range, or the archive")
    key = models.CharField(max_length=64, unique=True, help_text="sha256 of the request: the same request resumes")
    created_at = models.DateTimeField(auto_now_add=True)
    resumed_at = models.DateTimeField(null=True, blank=True, help_text="when it was last started again")

    class Meta:
        db_table = "backfill_job"
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.source} {self.kind} job #{self.pk}"


class BackfillWindow(models.Model):
    """One task's work in a backfill job, done as one run: a coin's history from `start` to `end`,
    or one file (`path`)."""

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        RUNNING = "running", "running"
        DONE = "done", "done"
        FAILED = "failed", "failed"

    job = models.ForeignKey(BackfillJob, on_delete=models.CASCADE, related_name="windows")
    position = models.PositiveIntegerField(help_text="its place in the job, 1-based")
    coin = models.CharField(max_length=200, blank=True, help_text="upstream id (history)")
    coin_symbol = models.CharField(max_length=100, blank=True)
    coin_name = models.CharField(max_length=300, blank=True)
    start = models.DateTimeField(null=True, blank=True)
    end = models.DateTimeField(null=True, blank=True)
    path = models.CharField(max_length=2000, blank=True, help_text="the file (archive)")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    task_id = models.CharField(max_length=255, blank=True)
    records = models.PositiveIntegerField(default=0)
    rows_upserted = models.PositiveIntegerField(default=0)
    run = models.ForeignKey(IngestionRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "backfill_window"
        ordering = ["job", "position"]
        constraints = [models.UniqueConstraint(fields=["job", "position"], name="backfill_window_unique_position")]
        indexes = [models.Index(fields=["job", "status"], name="backfill_window_job_status")]

    def __str__(self) -> str:
        return f"{self.what} ({self.status})"

    @property
    def what(self) -> str:
        """The coin and its range, or the file."""
        return self.path or f"{self.coin} {self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M} UTC"

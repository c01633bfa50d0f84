"""What the data checks keep: records refused with their reason, and bodies whose structure
drifted from the one before."""

from __future__ import annotations

from django.db import models

from crypto.models.ingestion import SOURCE_NAME_LENGTH, IngestionRun, RawBody
from crypto.sources import source_choices


class QuarantinedRecord(models.Model):
    """A record that failed validation: not normalized, kept with its reason and its place in its
    raw body, so a bad record is never silently lost."""

    source = models.CharField(max_length=SOURCE_NAME_LENGTH, choices=source_choices)
    run = models.ForeignKey(IngestionRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="quarantined")
    raw = models.ForeignKey(RawBody, on_delete=models.CASCADE, related_name="quarantined")
    where = models.CharField(max_length=100, help_text="`record 12` or `line 40`")
    index = models.PositiveIntegerField(null=True, blank=True, help_text="place in the body's list of records")
    reason = models.TextField()
    quarantined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "quarantined_record"
        ordering = ["-id"]
        indexes = [models.Index(fields=["source", "-id"], name="quarantine_source_id")]

    def __str__(self) -> str:
        return f"{self.source} body #{self.raw_id} {self.where}: {self.reason[:60]}"


class SchemaDrift(models.Model):
    """A body whose structure differs from the source's previous body at the same position."""

    class Severity(models.TextChoices):
        INFO = "info", "info: fields we do not use"
        WARNING = "warning", "warning: fields we normalize"

    source = models.CharField(max_length=SOURCE_NAME_LENGTH, choices=source_choices)
    raw = models.ForeignKey(RawBody, on_delete=models.CASCADE, related_name="drifts")
    previous = models.ForeignKey(RawBody, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    run = models.ForeignKey(IngestionRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="drifts")
    severity = models.CharField(max_length=8, choices=Severity.choices)
    added = models.JSONField(default=list, blank=True)
    removed = models.JSONField(default=list, blank=True)
    type_changed = models.JSONField(default=dict, blank=True)
    null_rate_jumps = models.JSONField(default=dict, blank=True)
    used_fields = models.JSONField(default=list, blank=True, help_text="the drifted fields we normalize")
    summary = models.TextField()
    detected_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "schema_drift"
        ordering = ["-id"]
        indexes = [models.Index(fields=["source", "-id"], name="drift_source_id")]

    def __str__(self) -> str:
        return f"{self.source} drift ({self.severity}) in body #{self.raw_id}"

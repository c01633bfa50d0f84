"""Runs, the raw bodies they stored, the files they loaded, and backfill jobs with their windows."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from crypto.admin.base import BODY_PREVIEW_CHARS, NamesRawBodies, ReadOnlyAdmin
from crypto.models import (
    BackfillJob,
    BackfillWindow,
    IngestionRun,
    LoadedFile,
    RawBody,
    RunBody,
)
from crypto.services.ingest.enqueue import ingestion_enqueue
from crypto.services.ingest.jobs import progress_fields, progress_of
from crypto.sources.fingerprint import fingerprint_digest


class RunBodyInline(NamesRawBodies, admin.TabularInline):
    model = RunBody
    fields = ("position", "raw", "fetched_at")
    readonly_fields = fields
    extra = 0
    can_delete = False


class FlaggedFilter(admin.SimpleListFilter):
    title = "anomaly flags"
    parameter_name = "flagged"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "flagged"), ("no", "not flagged")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[IngestionRun]) -> QuerySet[IngestionRun]:
        if self.value() == "yes":
            return queryset.exclude(flags=[])
        if self.value() == "no":
            return queryset.filter(flags=[])
        return queryset


@admin.register(IngestionRun)
class IngestionRunAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "source",
        "status",
        "trigger",
        "started_at",
        "duration",
        "records_fetched",
        "raw_stored",
        "raw_duplicates",
        "rows_upserted",
        "records_rejected",
        "flagged",
        "short_error",
    )
    list_filter = ("source", "status", FlaggedFilter, "trigger", ("started_at", admin.DateFieldListFilter))
    search_fields = ("error", "task_id")
    date_hierarchy = "started_at"
    readonly_fields = (
        "source",
        "trigger",
        "status",
        "started_at",
        "finished_at",
        "duration",
        "task_id",
        "records_fetched",
        "raw_stored",
        "raw_duplicates",
        "rows_upserted",
        "records_rejected",
        "error_kind",
        "error",
        "problems_list",
        "flags_list",
        "comparison",
    )
    exclude = ("problems", "flags")
    inlines = [RunBodyInline]
    actions = ["ingest_again"]

    @admin.action(description="Ingest the sources of the selected runs again, now")
    def ingest_again(self, request: HttpRequest, queryset: QuerySet[IngestionRun]) -> None:
        sources = sorted(set(queryset.values_list("source", flat=True)))
        for item in ingestion_enqueue(sources=sources, trigger=IngestionRun.Trigger.ADMIN):
            if item["error"]:
                self.message_user(request, f"{item['source']}: {item['error']}", messages.ERROR)
            else:
                said = "queued as task " + item["task_id"] if item["status"] == "queued" else "ran here and succeeded"
                self.message_user(request, f"{item['source']}: {said}")

    @admin.display(description="flags")
    def flagged(self, run: IngestionRun) -> str:
        """The kinds of its anomaly flags, their messages on hover; nothing for a run without any
        (not a red cross: an unflagged run is the good case)."""
        if not run.flags:
            return ""
        kinds = ", ".join(dict.fromkeys(flag["kind"].replace("_", " ") for flag in run.flags))
        messages = "; ".join(flag["message"] for flag in run.flags)
        return format_html('<span title="{}">&#9873; {}</span>', messages[:1000], kinds)

    @admin.display(description="duration (s)")
    def duration(self, run: IngestionRun) -> float | None:
        return run.duration_seconds

    @admin.display(description="error")
    def short_error(self, run: IngestionRun) -> str:
        return run.error[:120]

    @admin.display(description="rejected records (first 100; all of them under Quarantined records)")
    def problems_list(self, run: IngestionRun) -> str:
        return "\n".join(run.problems) or "-"

    @admin.display(description="anomaly flags")
    def flags_list(self, run: IngestionRun) -> str:
        return "\n".join(f"{flag['kind']}: {flag['message']}" for flag in run.flags) or "-"


@admin.register(RawBody)
class RawBodyAdmin(ReadOnlyAdmin):
    list_display = ("id", "source", "fetched_at", "record_count", "position", "run", "short_hash")
    list_select_related = ("run",)  # nullable, so not followed by default: one query per row
    list_filter = ("source", ("fetched_at", admin.DateFieldListFilter))
    search_fields = ("content_hash", "request")
    date_hierarchy = "fetched_at"
    exclude = ("data", "fingerprint")
    readonly_fields = (
        "source",
        "fetched_at",
        "record_count",
        "position",
        "request",
        "run",
        "content_hash",
        "structure",
        "pretty_data",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[RawBody]:
        # The list never needs the bodies (up to ~2 MB each); the detail page loads its own.
        queryset = super().get_queryset(request)
        match = request.resolver_match
        on_list = match is not None and (match.url_name or "").endswith("changelist")
        return queryset.defer("data") if on_list else queryset

    @admin.display(description="hash")
    def short_hash(self, raw: RawBody) -> str:
        return raw.content_hash[:12]

    @admin.display(description="structure (field paths and JSON types)")
    def structure(self, raw: RawBody) -> str:
        if not raw.fingerprint:
            return "-"
        # Bodies of the same shape share the digest: compare it across bodies at a glance.
        shape = fingerprint_digest(raw.fingerprint)
        text = "\n".join(f"{path}: {types}" for path, types in raw.fingerprint.items())
        return format_html('shape {}<pre style="max-height:20em;overflow:auto">{}</pre>', shape, text)

    @admin.display(description="body (as received)")
    def pretty_data(self, raw: RawBody) -> str:
        text = json.dumps(raw.data, indent=2, ensure_ascii=False)
        if len(text) > BODY_PREVIEW_CHARS:
            text = text[:BODY_PREVIEW_CHARS] + f"\n... ({len(text) - BODY_PREVIEW_CHARS} more characters)"
        return format_html('<pre style="max-height:40em;overflow:auto">{}</pre>', text)


@admin.register(LoadedFile)
class LoadedFileAdmin(ReadOnlyAdmin):
    list_display = ("id", "source", "path", "size", "records", "run_id", "loaded_at")
    list_filter = ("source",)
    search_fields = ("path", "digest")
    raw_id_fields = ("run",)


@admin.register(BackfillJob)
class BackfillJobAdmin(ReadOnlyAdmin):
    """A backfill spread across the workers, with its progress; its windows are listed by job."""

    list_display = ("id", "source", "kind", "request", "created_at", "progress", "records", "rate", "eta")
    list_filter = ("source", "kind")
    readonly_fields = ("source", "kind", "request", "created_at", "resumed_at", "progress", "records", "rate", "eta")

    def get_queryset(self, request: HttpRequest) -> QuerySet[BackfillJob]:
        return super().get_queryset(request).annotate(**progress_fields(prefix="windows__"))

    @admin.display(description="windows")
    def progress(self, job: BackfillJob) -> str:
        p = progress_of(job)
        url = reverse("admin:crypto_backfillwindow_changelist") + f"?job__id__exact={job.pk}"
        failed = f", {p.failed} failed" if p.failed else ""
        return format_html('<a href="{}">{} of {} done{}, {} running</a>', url, p.done, p.total, failed, p.running)

    @admin.display(description="records")
    def records(self, job: BackfillJob) -> str:
        return f"{progress_of(job).records:,}"

    @admin.display(description="records/s")
    def rate(self, job: BackfillJob) -> str:
        return f"{progress_of(job).records_per_second:,.0f}"

    @admin.display(description="ETA")
    def eta(self, job: BackfillJob) -> str:
        eta = progress_of(job).eta_seconds
        return "-" if eta is None else ("finished" if progress_of(job).finished else f"{eta:.0f}s")


@admin.register(BackfillWindow)
class BackfillWindowAdmin(ReadOnlyAdmin):
    list_display = (
        "position",
        "job_id",
        "coin_or_file",
        "window_range",
        "status",
        "attempts",
        "records",
        "run_id",
        "short_error",
    )
    list_filter = ("status", "job__source", "job")
    search_fields = ("coin", "path", "error")
    list_select_related = ("job",)
    raw_id_fields = ("job", "run")

    @admin.display(description="coin or file", ordering="coin")
    def coin_or_file(self, window: BackfillWindow) -> str:
        return window.path or window.coin

    @admin.display(description="range (UTC)", ordering="start")
    def window_range(self, window: BackfillWindow) -> str:
        if window.start is None or window.end is None:
            return "-"
        nowrap = '<span style="white-space:nowrap">{}</span>'
        return format_html(nowrap + " to " + nowrap, f"{window.start:%Y-%m-%d %H:%M}", f"{window.end:%Y-%m-%d %H:%M}")

    @admin.display(description="error")
    def short_error(self, window: BackfillWindow) -> str:
        return window.error[:160] + ("..." if len(window.error) > 160 else "")

"""Operators inspect raw bodies, runs and normalized data here. Read-mostly: data comes in through
ingestion, never by hand-editing, so the data views are read-only."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from functools import cached_property
from typing import Any

from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db import connection, models
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from crypto.api.selectors import quarantined_record_raw
from crypto.models import (
    Asset,
    BackfillJob,
    BackfillWindow,
    CanonicalAsset,
    IngestionRun,
    LoadedFile,
    MarketQuote,
    QuarantinedRecord,
    RawBody,
    RunBody,
    SchemaDrift,
)
from crypto.services.ingest.enqueue import ingestion_enqueue
from crypto.services.ingest.jobs import progress_fields, progress_of
from crypto.services.link.refresh import assets_link, assets_unlink
from crypto.sources.fingerprint import fingerprint_digest

BODY_PREVIEW_CHARS = 200_000


class EstimatedCountPaginator(Paginator):
    """An unfiltered list of a big table is counted from the planner's estimate (pg_class), not
    by count(*), which reads every row of millions on each page; a filtered list, a small table
    or one never analyzed is counted exactly."""

    exact_below = 100_000

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if isinstance(queryset, QuerySet) and not queryset.query.where:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [queryset.model._meta.db_table]
                )
                estimate = int(cursor.fetchone()[0])
            if estimate >= self.exact_below:
                return estimate
        return super().count


def plain_decimal(value: Decimal | None) -> str:
    """A decimal as written, without the trailing zeros of its column's scale (`29427.918932650417`,
    not `29427.918932650417000000`); no exponent, however small."""
    if value is None:
        return "-"
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _plain_column(field: models.DecimalField) -> Callable[[Any], str]:
    def show(obj: Any) -> str:
        return plain_decimal(getattr(obj, field.name))

    show.short_description = field.verbose_name  # type: ignore[attr-defined]
    show.admin_order_field = field.name  # type: ignore[attr-defined]
    return show


class ReadOnlyAdmin(admin.ModelAdmin):
    """View-only admin. Decimal columns show their value as written (`plain_decimal`), in lists and
    on each row's page, not padded to their column's 8 or 24 places."""

    def __init__(self, model: type[models.Model], admin_site: admin.AdminSite) -> None:
        super().__init__(model, admin_site)
        self._plain = {
            field.name: f"{field.name}_plain"
            for field in model._meta.get_fields()
            if isinstance(field, models.DecimalField)
        }
        for field in model._meta.get_fields():
            if isinstance(field, models.DecimalField):
                setattr(self, self._plain[field.name], _plain_column(field))

    def _plained(self, names: Any) -> list[Any]:
        return [self._plain.get(name, name) if isinstance(name, str) else name for name in names]

    def get_list_display(self, request: HttpRequest) -> Any:
        return self._plained(super().get_list_display(request))

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self._plained(super().get_fields(request, obj))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [*super().get_readonly_fields(request, obj), *self._plain.values()]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Deleted rows would not come back: a re-fetched body already stored is skipped as
        # unchanged, and /stats keeps running totals of the bodies.
        return False


class NamesRawBodies:
    """For pages that show raw rows by name and link only: the related rows come in the same
    query, without their bodies (up to ~2 MB each) or fingerprints."""

    raw_relations: tuple[str, ...] = ("raw",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)  # type: ignore[misc]
        heavy = [f"{relation}__{field}" for relation in self.raw_relations for field in ("data", "fingerprint")]
        # A list's own list_select_related is applied only to a queryset without select_related: keep it.
        listed = getattr(self, "list_select_related", ())
        also = tuple(listed) if isinstance(listed, (list, tuple)) else ()
        return queryset.select_related(*self.raw_relations, *also).defer(*heavy)


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


@admin.register(Asset)
class AssetAdmin(ReadOnlyAdmin):
    list_display = ("id", "source", "upstream_id", "symbol", "name", "canonical", "link_status", "link_note")
    list_filter = ("source", "link_status")
    search_fields = ("symbol", "name", "upstream_id")
    list_select_related = ("canonical",)
    actions = ["link", "unlink"]

    @admin.action(description="Link the selected assets as one coin (one asset per source)")
    def link(self, request: HttpRequest, queryset: QuerySet[Asset]) -> None:
        try:
            canonical = assets_link(assets=queryset, who=request.user.get_username())
        except ValueError as exc:
            self.message_user(request, f"Not linked: {exc}.", messages.ERROR)
            return
        self.message_user(request, f"Linked as {canonical} (canonical asset #{canonical.pk}).")

    @admin.action(description="Unlink the selected assets (the linking rule will leave them unlinked)")
    def unlink(self, request: HttpRequest, queryset: QuerySet[Asset]) -> None:
        count = assets_unlink(assets=queryset, who=request.user.get_username())
        self.message_user(request, f"Unlinked {count} assets.")


class LinkedAssetInline(admin.TabularInline):
    model = Asset
    fields = ("source", "upstream_id", "symbol", "name", "link_status", "link_note")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(CanonicalAsset)
class CanonicalAssetAdmin(ReadOnlyAdmin):
    list_display = ("id", "symbol", "name", "created_at")
    search_fields = ("symbol", "name", "assets__upstream_id")
    inlines = [LinkedAssetInline]


@admin.register(QuarantinedRecord)
class QuarantinedRecordAdmin(NamesRawBodies, ReadOnlyAdmin):
    # Ids, not related objects: a listed body would drag its ~2 MB of JSON into every row.
    list_display = ("id", "source", "run_id", "raw_id", "where", "reason", "quarantined_at")
    list_filter = ("source",)
    search_fields = ("reason",)
    raw_id_fields = ("run", "raw")
    readonly_fields = ("source", "run", "raw", "where", "index", "reason", "quarantined_at", "record")
    show_full_result_count = False

    @admin.display(description="the record, as its body holds it")
    def record(self, quarantined: QuarantinedRecord) -> str:
        text = json.dumps(quarantined_record_raw(quarantined), indent=2, ensure_ascii=False, default=str)
        return format_html("<pre>{}</pre>", text)


@admin.register(SchemaDrift)
class SchemaDriftAdmin(NamesRawBodies, ReadOnlyAdmin):
    raw_relations = ("raw", "previous")
    list_display = ("id", "source", "severity", "summary", "raw_id", "previous_id", "run_id", "detected_at")
    list_filter = ("source", "severity")
    search_fields = ("summary",)
    raw_id_fields = ("raw", "previous", "run")


@admin.register(LoadedFile)
class LoadedFileAdmin(ReadOnlyAdmin):
    list_display = ("id", "source", "path", "size", "records", "run_id", "loaded_at")
    list_filter = ("source",)
    search_fields = ("path", "digest")
    raw_id_fields = ("run",)


@admin.register(MarketQuote)
class MarketQuoteAdmin(NamesRawBodies, ReadOnlyAdmin):
    list_display = (
        "id",
        "source",
        "asset",
        "symbol",
        "last_updated",
        "price_usd",
        "market_cap_usd",
        "volume_24h_usd",
        "market_cap_rank",
    )
    list_filter = ("source", "history", ("last_updated", admin.DateFieldListFilter))
    search_fields = ("asset__symbol", "asset__name", "asset__upstream_id")
    list_select_related = ("asset",)
    raw_id_fields = ("asset", "raw")
    # A count(*) over millions of quotes on every page is not free.
    show_full_result_count = False
    paginator = EstimatedCountPaginator

    @admin.display(description="symbol", ordering="asset__symbol")
    def symbol(self, quote: MarketQuote) -> str:
        return quote.asset.symbol


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

"""Operators inspect raw bodies, runs and normalized data here. Read-mostly: data comes in through
ingestion, never by hand-editing, so the data views are read-only."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from crypto.models import Asset, IngestionRun, MarketQuote, RawCryptoData, RunBody

BODY_PREVIEW_CHARS = 200_000


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Deleted rows would not come back: a re-fetched body already stored is skipped as
        # unchanged, and /stats keeps running totals of the bodies.
        return False


class RunBodyInline(admin.TabularInline):
    model = RunBody
    fields = ("position", "raw", "fetched_at")
    readonly_fields = fields
    extra = 0
    can_delete = False


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
        "short_error",
    )
    list_filter = ("source", "status", "trigger", ("started_at", admin.DateFieldListFilter))
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
    )
    exclude = ("problems",)
    inlines = [RunBodyInline]
    actions = ["ingest_again"]

    @admin.action(description="Ingest the sources of the selected runs again, now")
    def ingest_again(self, request: HttpRequest, queryset: QuerySet[IngestionRun]) -> None:
        from tasks.ingest import ingestion_enqueue

        sources = sorted(set(queryset.values_list("source", flat=True)))
        for item in ingestion_enqueue(sources=sources, trigger=IngestionRun.Trigger.ADMIN):
            if item["error"]:
                self.message_user(request, f"{item['source']}: {item['error']}", messages.ERROR)
            else:
                self.message_user(request, f"{item['source']}: queued as task {item['task_id'] or '(ran here)'}")

    @admin.display(description="duration (s)")
    def duration(self, run: IngestionRun) -> float | None:
        return run.duration_seconds

    @admin.display(description="error")
    def short_error(self, run: IngestionRun) -> str:
        return run.error[:120]

    @admin.display(description="rejected records (first 100)")
    def problems_list(self, run: IngestionRun) -> str:
        return "\n".join(run.problems) or "-"


@admin.register(RawCryptoData)
class RawCryptoDataAdmin(ReadOnlyAdmin):
    list_display = ("id", "source", "fetched_at", "record_count", "position", "run", "short_hash")
    list_filter = ("source", ("fetched_at", admin.DateFieldListFilter))
    search_fields = ("content_hash", "request")
    date_hierarchy = "fetched_at"
    exclude = ("data",)
    readonly_fields = (
        "source",
        "fetched_at",
        "record_count",
        "position",
        "request",
        "run",
        "content_hash",
        "pretty_data",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[RawCryptoData]:
        # The list never needs the bodies (up to ~2 MB each); the detail page loads its own.
        queryset = super().get_queryset(request)
        match = request.resolver_match
        on_list = match is not None and (match.url_name or "").endswith("changelist")
        return queryset.defer("data") if on_list else queryset

    @admin.display(description="hash")
    def short_hash(self, raw: RawCryptoData) -> str:
        return raw.content_hash[:12]

    @admin.display(description="body (as received)")
    def pretty_data(self, raw: RawCryptoData) -> str:
        text = json.dumps(raw.data, indent=2, ensure_ascii=False)
        if len(text) > BODY_PREVIEW_CHARS:
            text = text[:BODY_PREVIEW_CHARS] + f"\n... ({len(text) - BODY_PREVIEW_CHARS} more characters)"
        return format_html('<pre style="max-height:40em;overflow:auto">{}</pre>', text)


@admin.register(Asset)
class AssetAdmin(ReadOnlyAdmin):
    list_display = ("id", "source", "upstream_id", "symbol", "name", "first_seen_at", "updated_at")
    list_filter = ("source",)
    search_fields = ("symbol", "name", "upstream_id")


@admin.register(MarketQuote)
class MarketQuoteAdmin(ReadOnlyAdmin):
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
    list_filter = ("source", ("last_updated", admin.DateFieldListFilter))
    search_fields = ("asset__symbol", "asset__name", "asset__upstream_id")
    list_select_related = ("asset",)
    raw_id_fields = ("asset", "raw")
    show_full_result_count = False  # a count(*) over millions of quotes on every page is not free

    @admin.display(description="symbol", ordering="asset__symbol")
    def symbol(self, quote: MarketQuote) -> str:
        return quote.asset.symbol

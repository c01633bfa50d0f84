"""Assets, the coins linked across sources, and quotes."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from crypto.admin.base import EstimatedCountPaginator, NamesRawBodies, ReadOnlyAdmin
from crypto.models import (
    Asset,
    CanonicalAsset,
    MarketQuote,
)
from crypto.services.link.refresh import assets_link, assets_unlink


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

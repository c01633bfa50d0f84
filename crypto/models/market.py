"""The normalized market data: assets as each source names them, the coins linked across
sources, and the quotes observed of each asset."""

from __future__ import annotations

from django.db import models
from django.db.models import F

from crypto.models.ingestion import SOURCE_NAME_LENGTH, RawBody
from crypto.sources import source_choices


class CanonicalAsset(models.Model):
    """One coin across sources: the CoinGecko and CoinPaprika assets linked to it."""

    symbol = models.CharField(max_length=100, blank=True)
    name = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "canonical_asset"
        ordering = ["symbol", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.symbol})"


class Asset(models.Model):
    """An asset as one source identifies it. Keyed on the upstream id, never the symbol."""

    class LinkStatus(models.TextChoices):
        PENDING = "pending", "not examined yet"
        LINKED = "linked", "linked by the rule"
        AMBIGUOUS = "ambiguous", "ambiguous: several candidates"
        NO_MATCH = "no_match", "no counterpart found"
        OPERATOR_LINKED = "operator_linked", "linked by an operator"
        OPERATOR_UNLINKED = "operator_unlinked", "unlinked by an operator"

    source = models.CharField(max_length=SOURCE_NAME_LENGTH, choices=source_choices)
    upstream_id = models.CharField(max_length=200)
    symbol = models.CharField(max_length=100, blank=True)
    name = models.CharField(max_length=300, blank=True)
    first_seen_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    canonical = models.ForeignKey(
        CanonicalAsset, null=True, blank=True, on_delete=models.SET_NULL, related_name="assets"
    )
    # Database defaults too: the bulk load (crypto/services/ingest/bulk.py) inserts assets without them.
    link_status = models.CharField(max_length=20, db_default=LinkStatus.PENDING, choices=LinkStatus.choices)
    link_note = models.CharField(max_length=500, blank=True, db_default="", help_text="why linked, or the candidates")

    class Meta:
        db_table = "asset"
        ordering = ["source", "upstream_id"]
        constraints = [
            models.UniqueConstraint(fields=["source", "upstream_id"], name="asset_unique_source_upstream_id"),
            # A coin has at most one asset per source.
            models.UniqueConstraint(
                fields=["canonical", "source"],
                condition=models.Q(canonical__isnull=False),
                name="asset_unique_canonical_source",
            ),
        ]
        indexes = [
            models.Index(fields=["symbol"], name="asset_symbol"),
            models.Index(fields=["link_status"], name="asset_link_status"),
        ]

    def __str__(self) -> str:
        return f"{self.source}:{self.upstream_id}"


def _price() -> models.DecimalField:
    # 24 decimal places: micro-cap prices go down to 1e-15 USD in the recorded bodies.
    return models.DecimalField(max_digits=48, decimal_places=24, null=True, blank=True)


def _amount() -> models.DecimalField:
    return models.DecimalField(max_digits=40, decimal_places=8, null=True, blank=True)


def _percent() -> models.DecimalField:
    return models.DecimalField(max_digits=24, decimal_places=8, null=True, blank=True)


# The value columns of a quote, in the order the API shows them.
QUOTE_VALUE_FIELDS = [
    "price_usd",
    "market_cap_usd",
    "volume_24h_usd",
    "market_cap_rank",
    "circulating_supply",
    "total_supply",
    "max_supply",
    "price_change_24h_usd",
    "price_change_pct_24h",
    "market_cap_change_pct_24h",
]


class MarketQuote(models.Model):
    """One observation of an asset: its market data at the upstream's `last_updated`, in USD.
    NULL is "upstream had no value"; nothing unknown is stored as 0."""

    # No index of its own: the unique (asset, last_updated) index serves lookups by asset.
    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="quotes", db_index=False)
    source = models.CharField(max_length=SOURCE_NAME_LENGTH, choices=source_choices)
    last_updated = models.DateTimeField()
    price_usd = _price()
    market_cap_usd = _amount()
    volume_24h_usd = _amount()
    market_cap_rank = models.PositiveIntegerField(null=True, blank=True)
    circulating_supply = _amount()
    total_supply = _amount()
    max_supply = _amount()
    price_change_24h_usd = _price()
    price_change_pct_24h = _percent()
    market_cap_change_pct_24h = _percent()
    raw = models.ForeignKey(
        RawBody,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="quotes",
        help_text="the body this came from",
    )
    ingested_at = models.DateTimeField(auto_now=True)
    history = models.BooleanField(
        default=False, db_default=False, help_text="a point of history (`manage.py backfill`), not a live observation"
    )

    class Meta:
        db_table = "market_quote"
        ordering = ["-last_updated", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["asset", "last_updated"], name="quote_unique_asset_last_updated"),
        ]
        indexes = [
            # Keyset pages (crypto/api/pagination.py): each ordering has an index on (value, id).
            models.Index(F("last_updated").desc(), F("id").desc(), name="quote_last_updated_id"),
            models.Index(F("source"), F("last_updated").desc(), F("id").desc(), name="quote_source_updated_id"),
            # The market cap orderings' indexes (NULLS LAST) are made in SQL by migration 0003.
        ]

    def __str__(self) -> str:
        return f"{self.asset} @ {self.last_updated:%Y-%m-%d %H:%M:%S}"

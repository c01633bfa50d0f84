"""Query filters for the data API. Every bad value answers 400 naming its parameter: django-filter
validates through form fields, and the bounds below keep values inside what the columns hold."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import django_filters as filters
from django import forms
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.utils.choices import CallableChoiceIterator

from crypto.models import Asset, IngestionRun, MarketQuote, QuarantinedRecord, RawBody, SchemaDrift
from crypto.sources import source_choices

BIGINT_MAX = 2**63 - 1
AMOUNT_BOUND = Decimal("1e32")  # numeric(40, 8) holds 32 integer digits


class _UtcDateTimeField(filters.fields.IsoDateTimeField):
    """ISO 8601; a time that cannot be represented in UTC (year 9999 at -14:00) is a bad value."""

    def to_python(self, value: Any) -> datetime | None:
        try:
            parsed = super().to_python(value)
            # In UTC: Python accepts offsets up to +-24h, PostgreSQL only up to +-15:59.
            return parsed.astimezone(UTC) if parsed is not None else None
        except (OverflowError, ValueError) as exc:
            raise ValidationError(f"Enter a valid ISO 8601 date/time ({exc}).", code="invalid") from None


class UtcDateTimeFilter(filters.IsoDateTimeFilter):
    field_class = _UtcDateTimeField


class IdFilter(filters.NumberFilter):
    field_class = forms.IntegerField

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, min_value=1, max_value=BIGINT_MAX, **kwargs)


_TRUE, _FALSE = ("true", "True", "1"), ("false", "False", "0")


def truthy(value: str) -> bool:
    return value in _TRUE


class StrictBooleanFilter(filters.ChoiceFilter):
    """Yes or no, answering 400 to a value it cannot read, where BooleanFilter would ignore it
    (`?flagged=maybe`) and answer everything. It takes what BooleanFilter takes: true/false,
    True/False, 1/0."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("choices", [(value, value) for value in (*_TRUE, *_FALSE)])
        super().__init__(*args, **kwargs)

    def filter(self, qs: QuerySet[Any], value: Any) -> QuerySet[Any]:
        if value in filters.constants.EMPTY_VALUES:
            return qs
        return super().filter(qs, truthy(value))


def amount_filter(field: str, lookup: str, help_text: str) -> filters.NumberFilter:
    return filters.NumberFilter(
        field_name=field,
        lookup_expr=lookup,
        min_value=-AMOUNT_BOUND,
        max_value=AMOUNT_BOUND,
        help_text=help_text,
    )


def time_filter(field: str, lookup: str, help_text: str) -> UtcDateTimeFilter:
    return UtcDateTimeFilter(field_name=field, lookup_expr=lookup, help_text=help_text)


class SourceFilterSet(filters.FilterSet):
    """Every list filters by source."""

    source = filters.ChoiceFilter(choices=CallableChoiceIterator(source_choices))


class QuoteFilter(SourceFilterSet):
    symbol = filters.CharFilter(
        field_name="asset__symbol",
        lookup_expr="iexact",
        help_text="Asset symbol, any case (symbols repeat: several assets may match).",
    )
    upstream_id = filters.CharFilter(field_name="asset__upstream_id", help_text="Upstream id, e.g. `bitcoin`.")
    asset = IdFilter(field_name="asset_id", help_text="Asset id, as in /api/assets/.")
    since = time_filter("last_updated", "gte", "Observations at or after this time (ISO 8601).")
    until = time_filter("last_updated", "lt", "Observations before this time (ISO 8601).")
    min_market_cap = amount_filter("market_cap_usd", "gte", "Market cap at least this many USD.")
    max_market_cap = amount_filter("market_cap_usd", "lte", "Market cap at most this many USD.")
    history = StrictBooleanFilter(
        help_text="`true`: only points of history (`manage.py backfill`); `false`: only live observations."
    )

    class Meta:
        model = MarketQuote
        fields: list[str] = []


class AssetFilter(SourceFilterSet):
    symbol = filters.CharFilter(lookup_expr="iexact", help_text="Symbol, any case.")
    upstream_id = filters.CharFilter(help_text="Upstream id, e.g. `btc-bitcoin`.")
    name = filters.CharFilter(lookup_expr="icontains", help_text="Part of the name, any case.")
    link_status = filters.ChoiceFilter(
        choices=Asset.LinkStatus.choices,
        help_text="How the asset is linked across sources (`ambiguous` lists the cases left to a person).",
    )
    canonical = IdFilter(field_name="canonical_id", help_text="Assets linked to this canonical asset.")

    class Meta:
        model = Asset
        fields: list[str] = []


class RunFilter(SourceFilterSet):
    status = filters.ChoiceFilter(choices=IngestionRun.Status.choices)
    trigger = filters.ChoiceFilter(choices=IngestionRun.Trigger.choices)
    task_id = filters.CharFilter(help_text="Celery task id: every attempt of that task.")
    since = time_filter("started_at", "gte", "Runs started at or after this time (ISO 8601).")
    until = time_filter("started_at", "lt", "Runs started before this time (ISO 8601).")
    flagged = StrictBooleanFilter(
        method="flagged_filter", help_text="Runs with anomaly flags (true) or without (false)."
    )

    def flagged_filter(self, queryset: QuerySet[IngestionRun], name: str, value: str) -> QuerySet[IngestionRun]:
        return queryset.exclude(flags=[]) if truthy(value) else queryset.filter(flags=[])

    class Meta:
        model = IngestionRun
        fields: list[str] = []


class RawFilter(SourceFilterSet):
    run = IdFilter(field_name="run_id", help_text="Bodies first stored by this run.")
    since = time_filter("fetched_at", "gte", "Fetched at or after this time (ISO 8601).")
    until = time_filter("fetched_at", "lt", "Fetched before this time (ISO 8601).")

    class Meta:
        model = RawBody
        fields: list[str] = []


class QuarantineFilter(SourceFilterSet):
    run = IdFilter(field_name="run_id", help_text="Records quarantined by this run.")
    raw = IdFilter(field_name="raw_id", help_text="Records of this stored body.")

    class Meta:
        model = QuarantinedRecord
        fields: list[str] = []


class DriftFilter(SourceFilterSet):
    severity = filters.ChoiceFilter(choices=SchemaDrift.Severity.choices)
    run = IdFilter(field_name="run_id", help_text="Drift seen by this run.")

    class Meta:
        model = SchemaDrift
        fields: list[str] = []

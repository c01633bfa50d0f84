"""Shapes of the API's answers. Times are ISO 8601 in UTC (`...Z`); decimal values are strings of
the exact stored number without trailing zeros (`"29427.918932650417"`), never floats."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.utils.choices import CallableChoiceIterator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from crypto.api.openapi import trigger_source_choices
from crypto.models import (
    QUOTE_VALUE_FIELDS,
    Asset,
    BackfillJob,
    BackfillWindow,
    CanonicalAsset,
    IngestionRun,
    MarketQuote,
    QuarantinedRecord,
    RawBody,
    SchemaDrift,
)
from crypto.services.ingest.jobs import progress_of
from crypto.sources import source_choices


class PlainDecimalField(serializers.DecimalField):
    def to_representation(self, value: Any) -> str:
        number = Decimal(value)
        text = format(number.normalize(), "f")
        return "0" if text in {"-0", ""} else text


def _decimal(**kwargs: Any) -> PlainDecimalField:
    return PlainDecimalField(max_digits=48, decimal_places=24, read_only=True, allow_null=True, **kwargs)


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False)  # type: ignore[assignment]  # a field, not Serializer's attribute of this name


class DataQuerySerializer(serializers.Serializer):
    # The query parameter is called `source`, like DRF's Field.source attribute the stubs type.
    # Read when a serializer is made: which sources exist is configuration (INGEST_SOURCES).
    source = serializers.ChoiceField(choices=CallableChoiceIterator(source_choices), required=False)  # type: ignore[assignment,arg-type]
    limit = serializers.IntegerField(
        min_value=1,
        max_value=5000,
        default=100,
        help_text="records of the dataset to return (data_count counts all)",
    )


class QuoteSerializer(serializers.ModelSerializer):
    upstream_id = serializers.CharField(source="asset.upstream_id", read_only=True)
    symbol = serializers.CharField(source="asset.symbol", read_only=True)
    name = serializers.CharField(source="asset.name", read_only=True)
    price_usd = _decimal()
    market_cap_usd = _decimal()
    volume_24h_usd = _decimal()
    circulating_supply = _decimal()
    total_supply = _decimal()
    max_supply = _decimal()
    price_change_24h_usd = _decimal(help_text="USD amount (CoinGecko only; CoinPaprika gives a percent)")
    price_change_pct_24h = _decimal()
    market_cap_change_pct_24h = _decimal()

    class Meta:
        model = MarketQuote
        fields = [
            "id",
            "source",
            "asset",
            "upstream_id",
            "symbol",
            "name",
            "last_updated",
            *QUOTE_VALUE_FIELDS,
            "raw",
            "ingested_at",
            "history",
        ]
        read_only_fields = fields


class LatestQuoteSerializer(QuoteSerializer):
    class Meta(QuoteSerializer.Meta):
        fields = [f for f in QuoteSerializer.Meta.fields if f not in {"upstream_id", "symbol", "name", "asset"}]
        read_only_fields = fields


class AssetSerializer(serializers.ModelSerializer):
    latest_quote = serializers.SerializerMethodField()

    class Meta:
        model = Asset
        fields = [
            "id",
            "source",
            "upstream_id",
            "symbol",
            "name",
            "first_seen_at",
            "updated_at",
            "canonical",
            "link_status",
            "link_note",
            "latest_quote",
        ]
        read_only_fields = fields

    @extend_schema_field(LatestQuoteSerializer(allow_null=True))
    def get_latest_quote(self, asset: Asset) -> dict[str, Any] | None:
        # The view looks the latest quotes up for the whole page at once.
        quote = self.context.get("latest_quotes", {}).get(asset.pk)
        return LatestQuoteSerializer(quote).data if quote is not None else None


class BackfillProgressSerializer(serializers.Serializer):
    windows = serializers.IntegerField(source="total")
    done = serializers.IntegerField()
    failed = serializers.IntegerField()
    running = serializers.IntegerField()
    left = serializers.IntegerField(help_text="Windows not done nor failed: pending, retrying or running.")
    finished = serializers.BooleanField(help_text="Every window done or failed.")
    records = serializers.IntegerField()
    rows_upserted = serializers.IntegerField()
    records_per_second = serializers.FloatField()
    eta_seconds = serializers.FloatField(allow_null=True)


class BackfillWindowSerializer(serializers.ModelSerializer):
    class Meta:
        model = BackfillWindow
        fields = ["position", "coin", "start", "end", "path", "status", "error", "attempts", "records", "run"]
        read_only_fields = fields


class BackfillJobSerializer(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()

    class Meta:
        model = BackfillJob
        fields = ["id", "source", "kind", "request", "created_at", "resumed_at", "progress"]
        read_only_fields = fields

    @extend_schema_field(BackfillProgressSerializer)
    def get_progress(self, job: BackfillJob) -> dict[str, Any]:
        progress = progress_of(job)
        data = dict(BackfillProgressSerializer(progress).data)
        data["records_per_second"] = round(progress.records_per_second, 1)
        data["eta_seconds"] = None if progress.eta_seconds is None else round(progress.eta_seconds, 1)
        return data


class BackfillJobDetailSerializer(BackfillJobSerializer):
    failed_windows = serializers.SerializerMethodField(help_text="The first 100 failed windows, with the reason.")

    class Meta(BackfillJobSerializer.Meta):
        fields = [*BackfillJobSerializer.Meta.fields, "failed_windows"]
        read_only_fields = fields

    @extend_schema_field(BackfillWindowSerializer(many=True))
    def get_failed_windows(self, job: BackfillJob) -> list[dict[str, Any]]:
        failed = job.windows.filter(status=BackfillWindow.Status.FAILED).order_by("position")[:100]
        return list(BackfillWindowSerializer(failed, many=True).data)


class RunSerializer(serializers.ModelSerializer):
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)
    flagged = serializers.BooleanField(read_only=True, help_text="Whether the run has anomaly flags.")
    problems = serializers.ListField(
        child=serializers.CharField(),
        read_only=True,
        help_text="The first rejected records with their reasons.",
    )

    class Meta:
        model = IngestionRun
        fields = [
            "id",
            "source",
            "trigger",
            "status",
            "started_at",
            "finished_at",
            "duration_seconds",
            "task_id",
            "records_fetched",
            "raw_stored",
            "raw_duplicates",
            "rows_upserted",
            "records_rejected",
            "problems",
            "error",
            "error_kind",
            "retry_scheduled",
            "comparison",
            "flagged",
            "flags",
        ]
        read_only_fields = fields


class QuarantinedSerializer(serializers.ModelSerializer):
    class Meta:
        model = QuarantinedRecord
        fields = ["id", "source", "run", "raw", "where", "index", "reason", "quarantined_at"]
        read_only_fields = fields


class QuarantinedDetailSerializer(QuarantinedSerializer):
    record = serializers.JSONField(read_only=True, allow_null=True, help_text="The record as the body holds it.")

    class Meta(QuarantinedSerializer.Meta):
        fields = [*QuarantinedSerializer.Meta.fields, "record"]
        read_only_fields = fields


class DriftSerializer(serializers.ModelSerializer):
    class Meta:
        model = SchemaDrift
        fields = [
            "id",
            "source",
            "severity",
            "summary",
            "added",
            "removed",
            "type_changed",
            "null_rate_jumps",
            "used_fields",
            "raw",
            "previous",
            "run",
            "detected_at",
        ]
        read_only_fields = fields


class CanonicalAssetSerializer(serializers.ModelSerializer):
    assets = serializers.SerializerMethodField()

    class Meta:
        model = CanonicalAsset
        fields = ["id", "symbol", "name", "created_at", "assets"]
        read_only_fields = fields

    @extend_schema_field(serializers.DictField(child=serializers.CharField()))
    def get_assets(self, canonical: CanonicalAsset) -> dict[str, str]:
        """{source: upstream id} of the linked assets."""
        return {asset.source: asset.upstream_id for asset in canonical.assets.all()}


class RawListSerializer(serializers.ModelSerializer):
    class Meta:
        model = RawBody
        fields = ["id", "source", "fetched_at", "record_count", "content_hash", "request", "position", "run"]
        read_only_fields = fields


class RawDetailSerializer(RawListSerializer):
    data = serializers.SerializerMethodField(help_text="The upstream response body, as received; null when omitted.")  # type: ignore[assignment]  # a field, not Serializer's attribute of this name
    data_bytes = serializers.IntegerField(read_only=True, help_text="the body's size as JSON text")
    data_omitted = serializers.SerializerMethodField(
        help_text="why `data` is null: the body is larger than API_MAX_BODY_BYTES (read its records "
        "through /data or the database)"
    )

    class Meta(RawListSerializer.Meta):
        fields = [*RawListSerializer.Meta.fields, "data", "data_bytes", "data_omitted"]
        read_only_fields = fields

    @extend_schema_field(serializers.JSONField(allow_null=True))
    def get_data(self, raw: RawBody) -> Any:
        return raw.data if self.get_data_omitted(raw) is None else None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_data_omitted(self, raw: RawBody) -> str | None:
        size: int = raw.data_bytes  # type: ignore[attr-defined]  # annotated by the view
        if size <= settings.API_MAX_BODY_BYTES:
            return None
        return f"the body is {size:,} bytes, over API_MAX_BODY_BYTES={settings.API_MAX_BODY_BYTES:,}"


class TriggerSerializer(serializers.Serializer):
    # The body field is called `source`, like DRF's Field.source attribute the stubs type.
    source = serializers.ChoiceField(choices=CallableChoiceIterator(trigger_source_choices))  # type: ignore[assignment,arg-type]


class TriggeredSerializer(serializers.Serializer):
    source = serializers.CharField()  # type: ignore[assignment]  # a field, not Serializer's attribute of this name
    task_id = serializers.CharField(help_text="Celery task id; empty when it ran in process and failed")
    status = serializers.ChoiceField(
        choices=["queued", "succeeded", "failed"],
        help_text="queued for the workers; with no broker it ran in process and succeeded or failed",
    )
    error = serializers.CharField(help_text="why it failed, when it ran in process and failed")

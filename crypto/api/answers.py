"""The answers of /health, /data and /stats: their views render through these, and the schema shows
them. Times and decimals as in crypto/api/serializers.py."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

WITHHELD = "withheld: staff and API token holders see the reason"


class InternalTextField(serializers.CharField):
    """Text that can name local paths, hosts or internal exceptions: shown only where the view's
    context says the client may see detail (staff, token holders); others learn there is one."""

    def to_representation(self, value: Any) -> str:
        return super().to_representation(value) if self.context.get("detail") else WITHHELD


class DatabaseHealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok", "down"])
    latency_ms = serializers.FloatField(required=False)
    error = InternalTextField(required=False)


class BrokerHealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok", "down", "not_configured"])
    workers = serializers.ListField(child=serializers.CharField(), required=False)
    detail = serializers.CharField(required=False)
    error = InternalTextField(required=False)


class SourceHealthSerializer(serializers.Serializer):
    last_success_at = serializers.DateTimeField(
        allow_null=True, help_text="when the run that brought the newest data finished"
    )
    data_fetched_at = serializers.DateTimeField(
        allow_null=True, help_text="when the newest data was fetched (a saved file's: when it was saved)"
    )
    last_run_status = serializers.CharField(allow_null=True, help_text="of the latest live run that ended")
    last_error = InternalTextField(allow_null=True)
    scheduled = serializers.BooleanField(
        help_text="beat runs it: a broker is configured and its periodic task is enabled"
    )
    schedule_seconds = serializers.IntegerField(
        allow_null=True, help_text="null: not scheduled, or on a crontab rather than an interval"
    )
    stale = serializers.BooleanField(allow_null=True, help_text="null: no interval to judge it by")


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok", "degraded"])
    time = serializers.DateTimeField()
    database = DatabaseHealthSerializer()
    broker = BrokerHealthSerializer()
    failing_sources = serializers.ListField(child=serializers.CharField())
    stale_sources = serializers.ListField(child=serializers.CharField())
    sources = serializers.DictField(child=SourceHealthSerializer())


class HealthErrorSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["error"])
    time = serializers.DateTimeField()
    database = DatabaseHealthSerializer()


class DatasetSerializer(serializers.Serializer):
    source = serializers.CharField(source="run.source")  # type: ignore[assignment]  # a field, not Serializer's attribute of this name
    fetched_at = serializers.DateTimeField(help_text="when the newest body of the dataset was fetched")
    newest_record_at = serializers.DateTimeField(
        allow_null=True, help_text="the newest upstream timestamp among the dataset's records: how old the data is"
    )
    age_seconds = serializers.IntegerField(allow_null=True, help_text="seconds from `newest_record_at` to now")
    from_saved_file = serializers.BooleanField(help_text="loaded from a saved file (a recording), not fetched live")
    data_count = serializers.IntegerField(help_text="records in the whole dataset")
    run_id = serializers.IntegerField(source="run.pk")
    raw_ids = serializers.ListField(child=serializers.IntegerField())
    returned = serializers.IntegerField(help_text="records in `data` (at most `limit`)")
    bytes_capped = serializers.BooleanField(
        help_text="fewer records than `limit`: the next would take the answer past API_MAX_BODY_BYTES"
    )
    data = serializers.ListField(  # type: ignore[assignment]  # a field, not Serializer's attribute of this name
        source="records", child=serializers.JSONField(), help_text="records as the upstream sent them"
    )


class RunBriefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    trigger = serializers.CharField()
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    duration_seconds = serializers.FloatField(allow_null=True)
    records_fetched = serializers.IntegerField()
    rows_upserted = serializers.IntegerField()
    error = serializers.CharField(allow_null=True)


class DriftBriefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    severity = serializers.ChoiceField(choices=["info", "warning"])
    summary = serializers.CharField()
    detected_at = serializers.DateTimeField()


class SourceDriftSerializer(serializers.Serializer):
    events = serializers.IntegerField(help_text="schema drift events seen")
    warnings = serializers.IntegerField(help_text="of which on fields we normalize")
    latest = DriftBriefSerializer(allow_null=True)


class SourceStatsSerializer(serializers.Serializer):
    datasets = serializers.IntegerField()
    raw_rows = serializers.IntegerField()
    records = serializers.IntegerField()
    first_fetched_at = serializers.DateTimeField(allow_null=True)
    last_fetched_at = serializers.DateTimeField(allow_null=True)
    runs = serializers.DictField(child=serializers.IntegerField())
    quarantined = serializers.IntegerField(help_text="invalid records kept in quarantine")
    schema_drift = SourceDriftSerializer()
    last_run = RunBriefSerializer(allow_null=True)
    last_success = RunBriefSerializer(allow_null=True)


class TotalsSerializer(serializers.Serializer):
    raw_rows = serializers.IntegerField()
    records = serializers.IntegerField()
    runs = serializers.IntegerField()


class StatsSerializer(serializers.Serializer):
    sources = serializers.DictField(child=SourceStatsSerializer())
    totals = TotalsSerializer()

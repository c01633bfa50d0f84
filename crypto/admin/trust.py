"""Quarantined records and schema drift."""

from __future__ import annotations

import json

from django.contrib import admin
from django.utils.html import format_html

from crypto.admin.base import NamesRawBodies, ReadOnlyAdmin
from crypto.api.selectors import quarantined_record_raw
from crypto.models import (
    QuarantinedRecord,
    SchemaDrift,
)


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

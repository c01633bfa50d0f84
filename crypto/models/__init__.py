"""The schema: raw upstream bodies, ingestion runs, and the normalized market data built from them,
one module each (ingestion, market, trust); every model is importable from here."""

from crypto.models.ingestion import (
    SOURCE_NAME_LENGTH,
    BackfillJob,
    BackfillWindow,
    IngestionRun,
    LoadedFile,
    RawBody,
    RunBody,
    SourceSchedule,
    SourceTotals,
)
from crypto.models.market import QUOTE_VALUE_FIELDS, Asset, CanonicalAsset, MarketQuote
from crypto.models.trust import QuarantinedRecord, SchemaDrift

__all__ = [
    "QUOTE_VALUE_FIELDS",
    "SOURCE_NAME_LENGTH",
    "Asset",
    "BackfillJob",
    "BackfillWindow",
    "CanonicalAsset",
    "IngestionRun",
    "LoadedFile",
    "MarketQuote",
    "QuarantinedRecord",
    "RawBody",
    "RunBody",
    "SchemaDrift",
    "SourceSchedule",
    "SourceTotals",
]

"""drf-spectacular's settings: how the OpenAPI schema at /api/schema/ describes the API. Fixed
text and references by name, so the settings module reads only the environment."""

from typing import Any

OPENAPI_SETTINGS: dict[str, Any] = {
    "TITLE": "Kasparro crypto market data",
    "DESCRIPTION": (
        "Market data from CoinGecko, CoinPaprika and CSV files: raw upstream bodies, normalized quotes, "
        "ingestion runs. Times are ISO 8601 UTC; decimal values are strings of exact numbers."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from the installed sidecar package: the docs work with no internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "SourceEnum": "crypto.sources.source_choices",
        "TriggerSourceEnum": "crypto.api.openapi.trigger_source_choices",
        "RunStatusEnum": "crypto.models.IngestionRun.Status",
        "RunTriggerEnum": "crypto.models.IngestionRun.Trigger",
        "ErrorKindEnum": "crypto.models.IngestionRun.ErrorKind",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "crypto.api.openapi.error_responses",
    ],
}

"""Schema post-processing: document the error answers every operation can give, in the one
error shape, so the schema is true to what clients actually receive."""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from rest_framework.permissions import AllowAny

from crypto.sources import source_choices


class KasparroAutoSchema(AutoSchema):
    """An operation anyone may call lists no security requirement, so the docs draw a lock only
    where a token or session is needed (triggering a run)."""

    def get_auth(self) -> list[dict[str, list[Any]]]:
        if all(isinstance(permission, AllowAny) for permission in self.view.get_permissions()):
            return []
        return [requirement for requirement in super().get_auth() if requirement]


def trigger_source_choices() -> list[tuple[str, str]]:
    """What POST /api/runs/ takes: a source, or all of them (ENUM_NAME_OVERRIDES in settings)."""
    return [*source_choices(), ("all", "all")]


ERROR_SCHEMA = {
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {"type": "string"},
        "errors": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
    },
}


def error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Error", ERROR_SCHEMA)
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, operations in result.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if any(p.get("in") == "query" for p in operation.get("parameters", [])):
                responses.setdefault("400", {"description": "A query parameter is invalid.", "content": error})
            if "{" in path:
                responses.setdefault("404", {"description": "No such row.", "content": error})
            if not path.startswith("/health"):
                responses.setdefault("429", {"description": "Throttled: slow down.", "content": error})
            # /health declares its own 503 (its body says which part is down).
            unavailable = "The database (or, to trigger a run, the broker) is unavailable."
            responses.setdefault("503", {"description": unavailable, "content": error})
    return result

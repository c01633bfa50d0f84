"""Keyset ("seek") pagination: every page costs the same, the first or the thousandth.

OFFSET pagination reads and discards every row before the page, and its `count(*)` reads the
whole table on every request; both grow with the data. DRF's CursorPagination seeks on the first
ordering field only and falls back to OFFSET among rows that tie on it, and thousands of quotes
share one `last_updated`. Here the cursor holds the last row's (value, id), and the next page is
`WHERE (value, id) < (cursor) ORDER BY value, id LIMIT n`, which an index on (value, id) answers
by seeking straight to the position.

Nullable ordering fields sort NULLs last in both directions: the non-null section is paged by
row comparison, then the NULL section by id alone.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import orjson
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import connection
from django.db.models import F, Model, QuerySet
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


@dataclass(frozen=True)
class Ordering:
    field: str
    descending: bool


def orderings(*fields: str) -> dict[str, Ordering]:
    """`orderings("last_updated")` allows `last_updated` and `-last_updated`."""
    allowed = {}
    for name in fields:
        allowed[name] = Ordering(name, False)
        allowed[f"-{name}"] = Ordering(name, True)
    return allowed


class KeysetPagination(BasePagination):
    page_size_query_param = "page_size"
    cursor_query_param = "cursor"
    ordering_query_param = "ordering"

    def paginate_queryset(self, queryset: QuerySet[Any], request: Request, view: Any = None) -> list[Any]:
        allowed: dict[str, Ordering] = view.keyset_orderings
        default: str = view.keyset_default
        self.request = request
        self.ordering_name = request.query_params.get(self.ordering_query_param) or default
        if self.ordering_name not in allowed:
            raise ValidationError(
                {
                    self.ordering_query_param: [
                        f"Unknown ordering {self.ordering_name!r}; use one of: {', '.join(allowed)}."
                    ]
                }
            )
        ordering = allowed[self.ordering_name]
        self.page_size = self._page_size(request)
        model: type[Model] = queryset.model
        field = model._meta.get_field(ordering.field)
        nullable = bool(getattr(field, "null", False))
        cursor = self._decode(request.query_params.get(self.cursor_query_param), model, ordering)

        rows: list[Any]
        if cursor is None or cursor["v"] is not None:
            rows = list(self._section(queryset, ordering, cursor, non_null=nullable)[: self.page_size + 1])
            if nullable and len(rows) <= self.page_size:
                # The non-null rows ran out on this page: go on into the NULL section.
                rest = self._section(queryset, ordering, None, null=True)
                rows += list(rest[: self.page_size + 1 - len(rows)])
        else:
            rows = list(self._section(queryset, ordering, cursor, null=True)[: self.page_size + 1])
        self.has_next = len(rows) > self.page_size
        rows = rows[: self.page_size]
        self.last = rows[-1] if rows else None
        self.ordering = ordering
        return rows

    def _section(
        self,
        queryset: QuerySet[Any],
        ordering: Ordering,
        cursor: dict[str, Any] | None,
        *,
        non_null: bool = False,
        null: bool = False,
    ) -> QuerySet[Any]:
        table = queryset.model._meta.db_table
        column = queryset.model._meta.get_field(ordering.field).column
        if null:
            queryset = queryset.filter(**{f"{ordering.field}__isnull": True})
            order = [F("id").desc() if ordering.descending else F("id").asc()]
            if cursor is not None:
                queryset = queryset.filter(**{"id__lt" if ordering.descending else "id__gt": cursor["id"]})
            return queryset.order_by(*order)
        if non_null:
            # NULLS LAST spelled out: the order must match the index's exactly for PostgreSQL to
            # read the page straight from it.
            queryset = queryset.filter(**{f"{ordering.field}__isnull": False})
            nulls = {"nulls_last": True}
        else:
            nulls = {}
        if ordering.descending:
            order = [F(ordering.field).desc(**nulls), F("id").desc()]
        else:
            order = [F(ordering.field).asc(**nulls), F("id").asc()]
        if cursor is not None:
            # A row comparison, so the index on (field, id) seeks to the position.
            operator = "<" if ordering.descending else ">"
            queryset = queryset.extra(  # noqa: S610 (column names come from the model, values are params)
                where=[f'("{table}"."{column}", "{table}"."id") {operator} (%s, %s)'],
                params=[cursor["db_value"], cursor["id"]],
            )
        return queryset.order_by(*order)

    def _page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return DEFAULT_PAGE_SIZE
        try:
            size = int(raw)
        except ValueError:
            raise ValidationError({self.page_size_query_param: ["A whole number is required."]}) from None
        if size < 1:
            raise ValidationError({self.page_size_query_param: ["Must be 1 or more."]})
        return min(size, MAX_PAGE_SIZE)  # larger sizes are clamped, never served unbounded

    def _decode(self, raw: str | None, model: type[Model], ordering: Ordering) -> dict[str, Any] | None:
        if raw is None:
            return None
        invalid = ValidationError(
            {self.cursor_query_param: ["Invalid cursor: pass back the `next` link of a previous page unchanged."]}
        )
        try:
            cursor = orjson.loads(base64.urlsafe_b64decode(raw.encode() + b"=" * (-len(raw) % 4)))
        except (binascii.Error, ValueError, orjson.JSONDecodeError):
            raise invalid from None
        if not (isinstance(cursor, dict) and type(cursor.get("id")) is int and "v" in cursor):
            raise invalid
        if not 0 <= cursor["id"] < 2**63:  # a bigint column; a larger number is no position in it
            raise invalid
        if cursor.get("o") != self.ordering_name:
            raise ValidationError(
                {
                    self.cursor_query_param: [
                        f"This cursor pages by {cursor.get('o')!r}, not {self.ordering_name!r}: keep the ordering."
                    ]
                }
            )
        if cursor["v"] is not None:
            field = model._meta.get_field(ordering.field)
            try:
                value = field.to_python(cursor["v"])  # type: ignore[union-attr]
                if value is None:
                    raise ValueError("no value")
                cursor["db_value"] = field.get_db_prep_value(value, connection)  # type: ignore[union-attr]
            except (ValueError, TypeError, ArithmeticError, DjangoValidationError):
                raise invalid from None
        return cursor

    def _encode(self, row: Any) -> str:
        value = getattr(row, self.ordering.field)
        if value is not None:
            value = value.isoformat() if hasattr(value, "isoformat") else str(value)
        payload = orjson.dumps({"o": self.ordering_name, "v": value, "id": row.pk})
        return base64.urlsafe_b64encode(payload).decode().rstrip("=")

    def get_next_link(self) -> str | None:
        if not self.has_next or self.last is None:
            return None
        url = self.request.build_absolute_uri()
        return replace_query_param(url, self.cursor_query_param, self._encode(self.last))

    def get_paginated_response(self, data: Any) -> Response:
        return Response({"next": self.get_next_link(), "page_size": self.page_size, "results": data})

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["next", "page_size", "results"],
            "properties": {
                "next": {
                    "type": "string",
                    "nullable": True,
                    "format": "uri",
                    "description": "The next page, or null on the last page.",
                },
                "page_size": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE},
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": self.cursor_query_param,
                "in": "query",
                "required": False,
                "description": "Opaque position from a previous page's `next` link.",
                "schema": {"type": "string"},
            },
            {
                "name": self.page_size_query_param,
                "in": "query",
                "required": False,
                "description": f"Rows per page, default {DEFAULT_PAGE_SIZE}; above {MAX_PAGE_SIZE} is clamped.",
                "schema": {"type": "integer", "minimum": 1},
            },
            {
                "name": self.ordering_query_param,
                "in": "query",
                "required": False,
                "description": f"Sort order, default `{view.keyset_default}`.",
                "schema": {"type": "string", "enum": list(view.keyset_orderings)},
            },
        ]

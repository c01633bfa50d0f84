"""What every admin page of the app shares: view-only admins, decimals as written, estimated counts
for big tables, raw bodies named by their source and id."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from functools import cached_property
from typing import Any

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connection, models
from django.db.models import QuerySet
from django.http import HttpRequest

BODY_PREVIEW_CHARS = 200_000


class EstimatedCountPaginator(Paginator):
    """An unfiltered list of a big table is counted from the planner's estimate (pg_class), not
    by count(*), which reads every row of millions on each page; a filtered list, a small table
    or one never analyzed is counted exactly."""

    exact_below = 100_000

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if isinstance(queryset, QuerySet) and not queryset.query.where:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [queryset.model._meta.db_table]
                )
                estimate = int(cursor.fetchone()[0])
            if estimate >= self.exact_below:
                return estimate
        return super().count


def plain_decimal(value: Decimal | None) -> str:
    """A decimal as written, without the trailing zeros of its column's scale (`29427.918932650417`,
    not `29427.918932650417000000`); no exponent, however small."""
    if value is None:
        return "-"
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _plain_column(field: models.DecimalField) -> Callable[[Any], str]:
    def show(obj: Any) -> str:
        return plain_decimal(getattr(obj, field.name))

    show.short_description = field.verbose_name  # type: ignore[attr-defined]
    show.admin_order_field = field.name  # type: ignore[attr-defined]
    return show


class ReadOnlyAdmin(admin.ModelAdmin):
    """View-only admin. Decimal columns show their value as written (`plain_decimal`), in lists and
    on each row's page, not padded to their column's 8 or 24 places."""

    def __init__(self, model: type[models.Model], admin_site: admin.AdminSite) -> None:
        super().__init__(model, admin_site)
        self._plain = {
            field.name: f"{field.name}_plain"
            for field in model._meta.get_fields()
            if isinstance(field, models.DecimalField)
        }
        for field in model._meta.get_fields():
            if isinstance(field, models.DecimalField):
                setattr(self, self._plain[field.name], _plain_column(field))

    def _plained(self, names: Any) -> list[Any]:
        return [self._plain.get(name, name) if isinstance(name, str) else name for name in names]

    def get_list_display(self, request: HttpRequest) -> Any:
        return self._plained(super().get_list_display(request))

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self._plained(super().get_fields(request, obj))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [*super().get_readonly_fields(request, obj), *self._plain.values()]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Deleted rows would not come back: a re-fetched body already stored is skipped as
        # unchanged, and /stats keeps running totals of the bodies.
        return False


class NamesRawBodies:
    """For pages that show raw rows by name and link only: the related rows come in the same
    query, without their bodies (up to ~2 MB each) or fingerprints."""

    raw_relations: tuple[str, ...] = ("raw",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)  # type: ignore[misc]
        heavy = [f"{relation}__{field}" for relation in self.raw_relations for field in ("data", "fingerprint")]
        # A list's own list_select_related is applied only to a queryset without select_related: keep it.
        listed = getattr(self, "list_select_related", ())
        also = tuple(listed) if isinstance(listed, (list, tuple)) else ()
        return queryset.select_related(*self.raw_relations, *also).defer(*heavy)

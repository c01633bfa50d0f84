"""The data under /api/: normalized quotes, assets, ingestion runs and raw bodies. Read-only;
filtered with django-filter; paged by keyset so every page costs the same."""

from __future__ import annotations

from typing import Any

from django.db.models import OuterRef, QuerySet, Subquery
from django.db.models.expressions import RawSQL
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.throttling import BaseThrottle

from crypto.api.filters import AssetFilter, DriftFilter, QuarantineFilter, QuoteFilter, RawFilter, RunFilter
from crypto.api.pagination import KeysetPagination, orderings
from crypto.api.selectors import quarantined_record_raw
from crypto.api.serializers import (
    AssetSerializer,
    BackfillJobDetailSerializer,
    BackfillJobSerializer,
    CanonicalAssetSerializer,
    DriftSerializer,
    ErrorSerializer,
    QuarantinedDetailSerializer,
    QuarantinedSerializer,
    QuoteSerializer,
    RawDetailSerializer,
    RawListSerializer,
    RunSerializer,
    TriggeredSerializer,
    TriggerSerializer,
)
from crypto.api.throttling import ScopedRateThrottle
from crypto.models import (
    Asset,
    BackfillJob,
    CanonicalAsset,
    IngestionRun,
    MarketQuote,
    QuarantinedRecord,
    RawBody,
    SchemaDrift,
)
from crypto.services.ingest.enqueue import ingestion_enqueue
from crypto.services.ingest.jobs import progress_fields
from crypto.sources import source_names


class _DataViewSet(viewsets.ReadOnlyModelViewSet):
    filter_backends = [DjangoFilterBackend]
    pagination_class = KeysetPagination
    lookup_value_regex = r"[0-9]{1,18}"  # ids are bigints; anything else is simply not found


class QuoteViewSet(_DataViewSet):
    """Normalized observations: one per asset and upstream `last_updated`, all values in USD."""

    queryset = MarketQuote.objects.select_related("asset")
    serializer_class = QuoteSerializer
    filterset_class = QuoteFilter
    keyset_orderings = orderings("last_updated", "market_cap_usd")
    keyset_default = "-last_updated"


class AssetViewSet(_DataViewSet):
    """Assets as each source identifies them (keyed on the upstream id), with the latest quote."""

    queryset = Asset.objects.annotate(
        latest_quote_id=Subquery(
            MarketQuote.objects.filter(asset=OuterRef("pk")).order_by("-last_updated").values("id")[:1]
        )
    )
    serializer_class = AssetSerializer
    filterset_class = AssetFilter
    keyset_orderings = orderings("id")
    keyset_default = "id"

    def get_serializer(self, *args: Any, **kwargs: Any) -> BaseSerializer:
        # One query for the latest quotes of the whole page, not one per asset.
        instance = args[0] if args else None
        assets = instance if isinstance(instance, list) else [instance] if isinstance(instance, Asset) else []
        ids = [quote_id for asset in assets if (quote_id := getattr(asset, "latest_quote_id", None))]
        quotes = MarketQuote.objects.in_bulk(ids) if ids else {}
        kwargs["context"] = {
            **self.get_serializer_context(),
            "latest_quotes": {quote.asset_id: quote for quote in quotes.values()},
        }
        return super().get_serializer(*args, **kwargs)


@extend_schema_view(
    create=extend_schema(
        request=TriggerSerializer,
        responses={
            202: TriggeredSerializer(many=True),
            200: OpenApiResponse(TriggeredSerializer(many=True), description="No broker: it ran here and succeeded."),
            502: OpenApiResponse(
                TriggeredSerializer(many=True), description="No broker: it ran here and a run failed (see `error`)."
            ),
            400: ErrorSerializer,
            401: ErrorSerializer,
            403: ErrorSerializer,
            429: ErrorSerializer,
        },
        description="Trigger ingestion now (staff user or token). Throttled by API_THROTTLE_TRIGGER.",
    )
)
class RunViewSet(mixins.CreateModelMixin, _DataViewSet):
    """Ingestion history, newest first: every run of every source, with its counts and error.
    POST triggers ingestion: a staff session or token only."""

    queryset = IngestionRun.objects.all()
    serializer_class = RunSerializer
    filterset_class = RunFilter
    keyset_orderings = orderings("started_at")
    keyset_default = "-started_at"
    throttle_scope = "trigger"

    def get_permissions(self) -> list[Any]:
        return [IsAdminUser()] if self.action == "create" else list(super().get_permissions())

    def get_throttles(self) -> list[BaseThrottle]:
        return [ScopedRateThrottle()] if self.action == "create" else super().get_throttles()

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        trigger = TriggerSerializer(data=request.data)
        trigger.is_valid(raise_exception=True)
        source = trigger.validated_data["source"]
        sources = list(source_names()) if source == "all" else [source]
        outcomes = ingestion_enqueue(sources=sources, trigger=IngestionRun.Trigger.API)
        states = {outcome["status"] for outcome in outcomes}
        code = (
            status.HTTP_202_ACCEPTED
            if "queued" in states
            else (status.HTTP_502_BAD_GATEWAY if "failed" in states else status.HTTP_200_OK)
        )
        return Response(TriggeredSerializer(outcomes, many=True).data, status=code)


class RawViewSet(_DataViewSet):
    """Stored upstream bodies: listed without their bodies; one row with its body."""

    queryset = RawBody.objects.all()
    filterset_class = RawFilter
    keyset_orderings = orderings("fetched_at")
    keyset_default = "-fetched_at"

    def get_queryset(self) -> QuerySet[RawBody]:
        # The body is read only when it fits the answer (API_MAX_BODY_BYTES), measured in the database.
        queryset = super().get_queryset().defer("data")
        if self.action == "list":
            return queryset
        return queryset.annotate(data_bytes=RawSQL("octet_length(data::text)", []))

    def get_serializer_class(self) -> type[BaseSerializer]:
        return RawListSerializer if self.action == "list" else RawDetailSerializer


class QuarantineViewSet(_DataViewSet):
    """Records that failed validation: not normalized, kept with the reason and their place in the
    stored body. One row also shows the record itself, as the body holds it."""

    queryset = QuarantinedRecord.objects.all()
    filterset_class = QuarantineFilter
    keyset_orderings = orderings("id")
    keyset_default = "-id"

    def get_serializer_class(self) -> type[BaseSerializer]:
        return QuarantinedSerializer if self.action == "list" else QuarantinedDetailSerializer

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        quarantined = self.get_object()
        quarantined.record = quarantined_record_raw(quarantined)  # type: ignore[attr-defined]
        return Response(self.get_serializer(quarantined).data)


class DriftViewSet(_DataViewSet):
    """Schema drift: bodies whose fields or JSON types changed against the source's previous body at
    the same position. `warning` when a field we normalize drifted, `info` otherwise."""

    queryset = SchemaDrift.objects.all()
    serializer_class = DriftSerializer
    filterset_class = DriftFilter
    keyset_orderings = orderings("id")
    keyset_default = "-id"


class BackfillJobViewSet(_DataViewSet):
    """Backfill jobs spread across the workers (`manage.py backfill --async`, `ingest --file ... --async`),
    newest first, each with its progress: windows done, failed and left, records, rate, ETA."""

    queryset = BackfillJob.objects.annotate(**progress_fields(prefix="windows__"))
    keyset_orderings = orderings("id")
    keyset_default = "-id"

    def get_serializer_class(self) -> type[BaseSerializer]:
        return BackfillJobDetailSerializer if self.action == "retrieve" else BackfillJobSerializer


class CanonicalAssetViewSet(_DataViewSet):
    """Coins across sources: each canonical asset with the upstream id of each linked source."""

    queryset = CanonicalAsset.objects.prefetch_related("assets")
    serializer_class = CanonicalAssetSerializer
    keyset_orderings = orderings("id")
    keyset_default = "id"

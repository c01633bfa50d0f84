"""The seed endpoints: /health, /data, /stats. Thin: parse input, call one selector, shape output."""

from __future__ import annotations

import contextlib
import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.exceptions import AuthenticationFailed, NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from crypto.api import selectors
from crypto.api.answers import DatasetSerializer, HealthErrorSerializer, HealthSerializer, StatsSerializer
from crypto.api.serializers import DataQuerySerializer, ErrorSerializer
from crypto.services.monitor.metrics import metrics_exposition


@extend_schema_view(retrieve=extend_schema(responses={200: HealthSerializer, 503: HealthErrorSerializer}))
class HealthViewSet(viewsets.ViewSet):
    """Is the service alive: database reachability and per-source freshness.

    `status` is `ok`; `degraded` when a source's latest live run failed, a scheduled source is
    stale, or the broker is down; `error` (HTTP 503) when the database is unreachable. The reasons
    (errors, which can name paths and hosts) are shown to staff and API token holders; others
    read `withheld`."""

    throttle_classes: list[type] = []  # monitors and container healthchecks poll it

    def perform_authentication(self, request: Request) -> None:
        # A token or a staff session sees the detail; a bad token makes the client anonymous here,
        # never refused: monitors poll this.
        with contextlib.suppress(AuthenticationFailed):
            request.user  # noqa: B018  # reading it authenticates

    def retrieve(self, request: Request) -> Response:
        report = selectors.health_report()
        detail = _sees_detail(request)
        if report["status"] == "error":
            return Response(_HEALTH_ERROR[detail].to_representation(report), status=status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response(_HEALTH[detail].to_representation(report))


# Bound once, not per request: /health is polled, and binding its fields costs more than its
# queries. Read-only, so shared by every request; one each for clients with and without detail.
_HEALTH = {detail: HealthSerializer(context={"detail": detail}) for detail in (False, True)}
_HEALTH_ERROR = {detail: HealthErrorSerializer(context={"detail": detail}) for detail in (False, True)}


def _sees_detail(request: Request) -> bool:
    """Staff and API token holders see the reasons behind /health (they can name local paths and
    hosts); everyone else sees the verdict."""
    return request.auth is not None or bool(getattr(request.user, "is_staff", False))


@extend_schema_view(
    retrieve=extend_schema(
        parameters=[DataQuerySerializer],
        responses={200: DatasetSerializer, 400: ErrorSerializer, 404: ErrorSerializer},
    )
)
class DataViewSet(viewsets.ViewSet):
    """The latest successfully ingested dataset: everything one successful run fetched from one
    source (all CoinGecko pages of that run), with its records as the upstream sent them. Latest
    means the newest data: a saved file loaded after a live run does not replace it, and a run
    that got no record failed. `newest_record_at` and `age_seconds` say how old the data is,
    `from_saved_file` whether it is a recording rather than a live fetch.

    `?source=coingecko|coinpaprika|csv` picks a source; `?limit=` caps the records returned
    (`data_count` always counts all of them)."""

    def retrieve(self, request: Request) -> Response:
        query = DataQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        source = query.validated_data.get("source")
        dataset = selectors.dataset_latest(source=source, limit=query.validated_data["limit"])
        if dataset is None:
            raise NotFound(
                f"No data has been ingested yet{f' for source {source!r}' if source else ''}; "
                "run `python manage.py ingest`."
            )
        return Response(DatasetSerializer(dataset).data)


@extend_schema_view(retrieve=extend_schema(responses={200: StatsSerializer}))
class StatsViewSet(viewsets.ViewSet):
    """Per source: datasets, stored bodies and records, first/last fetch, runs by status, and the
    last run with its duration and error. Aggregated in the database."""

    def retrieve(self, request: Request) -> Response:
        return Response(StatsSerializer(selectors.stats_summary()).data)


def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text exposition of every process's metrics (see crypto/services/monitor/metrics.py)."""
    token = settings.METRICS_TOKEN
    # Bytes, so any header compares: the header's as received (WSGI decodes them as latin-1).
    given = request.headers.get("Authorization", "").encode("latin-1", "replace")
    if token and not hmac.compare_digest(given, f"Bearer {token}".encode()):
        return JsonResponse({"detail": "Metrics need Authorization: Bearer <METRICS_TOKEN>."}, status=401)
    body, content_type = metrics_exposition()
    return HttpResponse(body, content_type=content_type)

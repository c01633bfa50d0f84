"""The front page and the dashboard: server-rendered pages over the dashboard's reads
(crypto/dashboard/selectors.py) and /health's verdict, with charts drawn in the browser by the
vendored uPlot from data embedded in each page. No front-end build, nothing from a CDN."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse

from crypto.api.selectors import health_report, stats_summary
from crypto.dashboard import selectors
from crypto.models import Asset, IngestionRun

PAGE_TTL_SECONDS = 10


def versioned(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Serve a page again from the cache while the data behind it is the same (no run started or
    ended since, `data_version`) and for PAGE_TTL_SECONDS at most, so that a page costs one index
    seek however often it is opened; a page that must stay live (a running run) is never kept."""

    @functools.wraps(view)
    def page(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # Staff see the reasons behind a failure (they can name paths and hosts), as on /health.
        try:
            key = f"dashboard-page:{_sees_detail(request)}:{request.get_full_path()}:{selectors.data_version()}"
            body = cache.get(key)
        except DatabaseError:  # the database away: the page says so (the front page does), uncached
            return view(request, *args, **kwargs)
        except Exception:  # the cache (Redis) away: render every time
            body = None
        if body is not None:
            return HttpResponse(body)
        response = view(request, *args, **kwargs)
        if response.status_code == 200 and not getattr(response, "live", False):
            with contextlib.suppress(Exception):  # not kept: rendered again next time
                cache.set(key, response.content, PAGE_TTL_SECONDS)
        return response

    return page


def _sees_detail(request: HttpRequest) -> bool:
    return bool(getattr(request.user, "is_staff", False))


def _sources(health: dict[str, Any]) -> list[dict[str, Any]]:
    stats = stats_summary()["sources"]
    rows = []
    for name, fresh in health.get("sources", {}).items():
        rows.append(
            {
                "name": name,
                "label": selectors.source_label(name),
                **fresh,
                "quarantined": stats.get(name, {}).get("quarantined", 0),
                "drift": stats.get(name, {}).get("schema_drift", {}),
                "records": stats.get(name, {}).get("records", 0),
            }
        )
    return rows


@versioned
def front(request: HttpRequest) -> HttpResponse:
    """`/`: the state of the system at a glance, and the way to everything else."""
    health = health_report()
    links = [
        ("Dashboard", reverse("dashboard"), "prices, movers and the pipeline's runs as charts"),
        ("API docs", "/api/docs/", "every endpoint, try them in the browser"),
        ("Browsable API", "/api/", "quotes, assets, runs, raw bodies, backfills"),
        ("Admin", "/admin/", "inspect rows and runs, link assets, trigger runs"),
        ("/health", "/health", "the verdict scripts and load balancers read"),
        (
            "/metrics",
            "/metrics",
            "Prometheus metrics" + (" (needs the bearer token)" if settings.METRICS_TOKEN else ""),
        ),
    ]
    if settings.FLOWER_URL:
        links.append(("Flower", settings.FLOWER_URL, "watch the Celery tasks"))
    sources = _sources(health) if health["status"] != "error" else []
    context = {"health": health, "sources": sources, "links": links, "detail": _sees_detail(request)}
    return render(request, "crypto/front.html", context)


@versioned
def overview(request: HttpRequest) -> HttpResponse:
    health = health_report()
    runs = selectors.recent_runs()
    sources = _sources(health) if health["status"] != "error" else []
    timeline = {
        "sources": [
            {
                "source": source["name"],
                "label": source["label"],
                "runs": [
                    {
                        "id": run.pk,
                        "status": run.status,
                        "at": run.started_at.timestamp(),
                        "seconds": run.duration_seconds,
                        "records": run.records_fetched,
                        "flags": len(run.flags),
                    }
                    for run in reversed(runs)
                    if run.source == source["name"]
                ],
            }
            for source in sources
        ]
    }
    context = {
        "health": health,
        "detail": _sees_detail(request),
        "sources": sources,
        "runs": runs[:15],
        "timeline": timeline,
        "movers": selectors.biggest_movers(),
    }
    return render(request, "crypto/dashboard/overview.html", context)


@versioned
def coin(request: HttpRequest, asset_id: int) -> HttpResponse:
    """A coin: its price from every linked source overlaid, with the checks' flags marked, its
    market cap and volume, and from each point the raw body it came from."""
    asset = get_object_or_404(Asset.objects.select_related("canonical"), pk=asset_id)
    assets = selectors.coin_assets(asset)
    series = {a.pk: selectors.asset_series(asset_id=a.pk) for a in assets}
    chart: dict[str, Any] = {"series": []}
    for a in assets:
        points = series[a.pk]
        moved, apart = selectors.series_flags(
            asset_id=a.pk, others=[other.pk for other in assets if other.pk != a.pk], series=points
        )
        chart["series"].append(
            {
                "label": f"{selectors.source_label(a.source)} ({a.upstream_id})",
                "source": a.source,
                "t": [p.at.timestamp() for p in points],
                "price": [None if p.price is None else float(p.price) for p in points],
                "market_cap": [None if p.market_cap is None else float(p.market_cap) for p in points],
                "volume": [None if p.volume is None else float(p.volume) for p in points],
                "raw": [p.raw_id for p in points],
                "moves": [p.at.timestamp() for p in moved],
                "apart": [p.at.timestamp() for p in apart],
            }
        )
    shown = sum(len(each) for each in series.values())
    context = {"asset": asset, "assets": assets, "chart": chart, "points": shown}
    return render(request, "crypto/dashboard/coin.html", context)


@versioned
def search(request: HttpRequest) -> HttpResponse:
    text = request.GET.get("q", "")[:100]
    return render(request, "crypto/dashboard/search.html", {"q": text, "assets": selectors.asset_search(text=text)})


@versioned
def run(request: HttpRequest, run_id: int) -> HttpResponse:
    the_run = get_object_or_404(IngestionRun, pk=run_id)
    running = the_run.status == IngestionRun.Status.RUNNING
    context = {
        "run": the_run,
        "running": running,
        "progress": selectors.run_estimate(the_run) if running else None,
        "drift": selectors.run_drift(the_run),
        "previous": the_run.comparison.get("previous_run") if the_run.comparison else None,
    }
    response = render(request, "crypto/dashboard/run.html", context)
    response.live = running  # type: ignore[attr-defined]  # its progress changes with no new run
    return response

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from crypto.api.data_views import (
    AssetViewSet,
    BackfillJobViewSet,
    CanonicalAssetViewSet,
    DriftViewSet,
    QuarantineViewSet,
    QuoteViewSet,
    RawViewSet,
    RunViewSet,
)
from crypto.api.views import DataViewSet, HealthViewSet, StatsViewSet, metrics_view

# "/?": every list and detail answers with or without its trailing slash; a redirect would turn a
# script's POST /api/runs into a GET that triggers nothing.
router = DefaultRouter()
router.trailing_slash = "/?"  # the constructor takes only True/False
# The root is served below, one view for `/api` and `/api/`: the browsable API's breadcrumbs name
# each view once, so two root views made "Api Root / Api Root".
router.include_root_view = False
router.register("quotes", QuoteViewSet, basename="quote")
router.register("assets", AssetViewSet, basename="asset")
router.register("runs", RunViewSet, basename="run")
router.register("raw", RawViewSet, basename="raw")
router.register("quarantine", QuarantineViewSet, basename="quarantine")
router.register("drift", DriftViewSet, basename="drift")
router.register("canonical-assets", CanonicalAssetViewSet, basename="canonical-asset")
router.register("backfills", BackfillJobViewSet, basename="backfill")

# Each answers with or without a trailing slash, and never redirects: scripts call `/health`.
urlpatterns = [
    re_path(r"^health/?$", HealthViewSet.as_view({"get": "retrieve"}), name="health"),
    re_path(r"^data/?$", DataViewSet.as_view({"get": "retrieve"}), name="data"),
    re_path(r"^stats/?$", StatsViewSet.as_view({"get": "retrieve"}), name="stats"),
    re_path(r"^metrics/?$", metrics_view, name="metrics"),
    re_path(r"^api/schema/?$", SpectacularAPIView.as_view(), name="schema"),
    re_path(r"^api/docs/?$", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    re_path(r"^api/?$", router.get_api_root_view(), name="api-root"),  # with or without its slash
    path("api/", include(router.urls)),
]

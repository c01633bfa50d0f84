from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from crypto.api.data_views import (
    AssetViewSet,
    CanonicalAssetViewSet,
    DriftViewSet,
    QuarantineViewSet,
    QuoteViewSet,
    RawViewSet,
    RunViewSet,
)
from crypto.api.views import DataViewSet, HealthViewSet, StatsViewSet, metrics_view

router = DefaultRouter()
router.register("quotes", QuoteViewSet, basename="quote")
router.register("assets", AssetViewSet, basename="asset")
router.register("runs", RunViewSet, basename="run")
router.register("raw", RawViewSet, basename="raw")
router.register("quarantine", QuarantineViewSet, basename="quarantine")
router.register("drift", DriftViewSet, basename="drift")
router.register("canonical-assets", CanonicalAssetViewSet, basename="canonical-asset")

# Each answers with or without a trailing slash, and never redirects: scripts call `/health`.
urlpatterns = [
    re_path(r"^health/?$", HealthViewSet.as_view({"get": "retrieve"}), name="health"),
    re_path(r"^data/?$", DataViewSet.as_view({"get": "retrieve"}), name="data"),
    re_path(r"^stats/?$", StatsViewSet.as_view({"get": "retrieve"}), name="stats"),
    path("metrics", metrics_view, name="metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("api/", include(router.urls)),
]

from django.urls import re_path

from crypto.api.views import DataViewSet, HealthViewSet, StatsViewSet

# Each answers with or without a trailing slash, and never redirects: scripts call `/health`.
urlpatterns = [
    re_path(r"^health/?$", HealthViewSet.as_view({"get": "list"}), name="health"),
    re_path(r"^data/?$", DataViewSet.as_view({"get": "list"}), name="data"),
    re_path(r"^stats/?$", StatsViewSet.as_view({"get": "list"}), name="stats"),
]

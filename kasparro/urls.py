from django.contrib import admin
from django.http import HttpRequest, JsonResponse
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("crypto.api.urls")),
]


def not_found(request: HttpRequest, exception: Exception) -> JsonResponse:
    return JsonResponse({"detail": "Not found."}, status=404)


# JSON in the one error shape, not an HTML page, for paths that match nothing and for crashes
# (no traceback reaches a client).
handler404 = not_found
handler500 = "rest_framework.exceptions.server_error"

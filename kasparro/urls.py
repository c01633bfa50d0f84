from django.contrib import admin
from django.http import HttpRequest, JsonResponse
from django.urls import include, path

from crypto.dashboard.views import front

urlpatterns = [
    path("", front, name="front"),
    path("dashboard/", include("crypto.dashboard.urls")),
    path("admin/", admin.site.urls),
    path("", include("crypto.api.urls")),
]


def not_found(request: HttpRequest, exception: Exception) -> JsonResponse:
    return JsonResponse({"detail": "Not found."}, status=404)


def bad_request(request: HttpRequest, exception: Exception) -> JsonResponse:
    return JsonResponse({"detail": "Bad request."}, status=400)  # an unknown Host header, say


def server_error(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"detail": "Server error; it has been logged."}, status=500)


# JSON in the one error shape, not an HTML page, for paths that match nothing, requests Django
# refuses and crashes (no traceback reaches a client).
handler400 = bad_request
handler404 = not_found
handler500 = server_error

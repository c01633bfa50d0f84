"""The app's URLs and `/bench/select-1`: a bare Django view that runs `SELECT 1` and answers JSON,
the least a health check that asks the database can cost."""

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.urls import path

from kasparro.urls import urlpatterns as app_urlpatterns


def select_1(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return JsonResponse({"status": "ok"})


urlpatterns = [path("bench/select-1", select_1), *app_urlpatterns]

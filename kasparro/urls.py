from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("crypto.api.urls")),
]

# JSON, not an HTML page, when something unexpected breaks (no traceback reaches a client).
handler500 = "rest_framework.exceptions.server_error"

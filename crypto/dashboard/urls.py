from django.urls import path

from crypto.dashboard import views

urlpatterns = [
    path("", views.overview, name="dashboard"),
    path("coins/<int:asset_id>/", views.coin, name="dashboard-coin"),
    path("search/", views.search, name="dashboard-search"),
    path("runs/<int:run_id>/", views.run, name="dashboard-run"),
]

"""Site URLs."""

from django.contrib import admin
from django.urls import include, path

from manualqa import views

admin.site.site_header = "ManualQA administration"
admin.site.site_title = "ManualQA"
admin.site.index_title = "Review and operations"

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("manuals/", include("curation.urls")),
    path("chat/", include("chat.urls")),
    path("training/", include("training.urls")),
    path("api/", include("manualqa.api_urls")),
    path("admin/", admin.site.urls),
]

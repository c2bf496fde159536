"""Site URLs."""

from django.contrib import admin
from django.urls import include, path

from chat import openai_api
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
    # The assistants for OpenAI clients (chat/openai_api.py).
    path("v1/models", openai_api.models, name="openai-models"),
    path("v1/chat/completions", openai_api.chat_completions, name="openai-chat-completions"),
    path("admin/", admin.site.urls),
]

"""Chat pages, mounted at /chat/ (the REST API is at /api/chat/)."""

from django.urls import path

from chat import views

app_name = "chat"
urlpatterns = [
    path("", views.chat_home, name="home"),
    path("c/<int:conversation_id>/", views.conversation_detail, name="conversation"),
    path("ask/", views.chat_ask, name="ask"),
    path("stream/", views.chat_stream, name="stream"),
    path("messages/<int:message_id>/feedback/", views.feedback_submit, name="feedback"),
    path("compare/", views.compare, name="compare"),
    path("compare/preference/", views.preference_submit, name="preference"),
]

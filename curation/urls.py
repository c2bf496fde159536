from django.urls import path

from curation import views

app_name = "curation"
urlpatterns = [
    path("", views.manual_list, name="manual_list"),
    path("<int:manual_id>/", views.manual_detail, name="manual_detail"),
    path("<int:manual_id>/documents/<int:document_id>/", views.document_detail, name="document"),
    path(
        "<int:manual_id>/documents/<int:document_id>/figures/<int:figure_id>/",
        views.figure_image,
        name="figure",
    ),
    path(
        "<int:manual_id>/sources/<int:source_file_id>.pdf",
        views.source_file,
        name="source_file",
    ),
]

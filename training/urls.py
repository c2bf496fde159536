from django.urls import path

from training import eval_views, views

app_name = "training"
urlpatterns = [
    path("", views.training_home, name="home"),
    path("new/", views.job_launch, name="launch"),
    path("jobs/<int:job_id>/", views.job_detail, name="job"),
    path("jobs/<int:job_id>/status.json", views.job_status, name="job_status"),
    path("jobs/<int:job_id>/cancel/", views.job_cancel, name="job_cancel"),
    path("jobs/<int:job_id>/resume/", views.job_resume, name="job_resume"),
    path("jobs/<int:job_id>/export/", views.job_export, name="job_export"),
    path("evaluations/", eval_views.evaluation_list, name="evaluations"),
    path("evaluations/new/", eval_views.evaluation_launch, name="evaluation_launch"),
    path("evaluations/<int:run_id>/", eval_views.evaluation_detail, name="evaluation"),
    path(
        "evaluations/<int:run_id>/status.json",
        eval_views.evaluation_status,
        name="evaluation_status",
    ),
    path(
        "evaluations/<int:run_id>/cancel/", eval_views.evaluation_cancel, name="evaluation_cancel"
    ),
    path(
        "evaluations/<int:run_id>/baseline/",
        eval_views.evaluation_baseline,
        name="evaluation_baseline",
    ),
    path(
        "evaluations/<int:run_id>/export.<str:fmt>",
        eval_views.evaluation_export,
        name="evaluation_export",
    ),
]

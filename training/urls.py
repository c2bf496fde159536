from django.urls import path

from training import eval_views, retrieval_views, views

app_name = "training"
urlpatterns = [
    path("", views.training_home, name="home"),
    path("new/", views.job_launch, name="launch"),
    path("jobs/<int:job_id>/", views.job_detail, name="job"),
    path("jobs/<int:job_id>/status.json", views.job_status, name="job_status"),
    path("jobs/<int:job_id>/cancel/", views.job_cancel, name="job_cancel"),
    path("jobs/<int:job_id>/resume/", views.job_resume, name="job_resume"),
    path("jobs/<int:job_id>/export/", views.job_export, name="job_export"),
    path("retrievers/", retrieval_views.retrieval_home, name="retrievers"),
    path("retrievers/<int:job_id>/", retrieval_views.retrieval_job_detail, name="retrieval_job"),
    path(
        "retrievers/<int:job_id>/status.json",
        retrieval_views.retrieval_job_status,
        name="retrieval_job_status",
    ),
    path(
        "retrievers/<int:job_id>/cancel/",
        retrieval_views.retrieval_job_cancel,
        name="retrieval_job_cancel",
    ),
    path("reembed/", retrieval_views.reembed_launch, name="reembed"),
    path("reembed/<int:run_id>/", retrieval_views.reembed_run_detail, name="reembed_run"),
    path(
        "reembed/<int:run_id>/status.json",
        retrieval_views.reembed_run_status,
        name="reembed_run_status",
    ),
    path(
        "reembed/<int:run_id>/cancel/",
        retrieval_views.reembed_run_cancel,
        name="reembed_run_cancel",
    ),
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

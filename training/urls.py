from django.urls import path

from training import eval_views, retrieval_views, views


def job_pages(route: str, module, name: str) -> list:
    """A job's page at ``route`` and, below it, the status JSON that page polls and its cancel
    button: ``module``'s views ``<name>_detail``, ``<name>_status`` and ``<name>_cancel``,
    named ``name``, ``<name>_status`` and ``<name>_cancel``."""
    return [
        path(route, getattr(module, f"{name}_detail"), name=name),
        path(f"{route}status.json", getattr(module, f"{name}_status"), name=f"{name}_status"),
        path(f"{route}cancel/", getattr(module, f"{name}_cancel"), name=f"{name}_cancel"),
    ]


app_name = "training"
urlpatterns = [
    path("", views.training_home, name="home"),
    path("new/", views.job_launch, name="launch"),
    *job_pages("jobs/<int:job_id>/", views, "job"),
    path("jobs/<int:job_id>/resume/", views.job_resume, name="job_resume"),
    path("jobs/<int:job_id>/export/", views.job_export, name="job_export"),
    path("retrievers/", retrieval_views.retrieval_home, name="retrievers"),
    *job_pages("retrievers/<int:job_id>/", retrieval_views, "retrieval_job"),
    path("reembed/", retrieval_views.reembed_launch, name="reembed"),
    *job_pages("reembed/<int:run_id>/", retrieval_views, "reembed_run"),
    path("evaluations/", eval_views.evaluation_list, name="evaluations"),
    path("evaluations/new/", eval_views.evaluation_launch, name="evaluation_launch"),
    *job_pages("evaluations/<int:run_id>/", eval_views, "evaluation"),
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

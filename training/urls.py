from django.urls import path

from training import views

app_name = "training"
urlpatterns = [
    path("", views.training_home, name="home"),
    path("new/", views.job_launch, name="launch"),
    path("jobs/<int:job_id>/", views.job_detail, name="job"),
    path("jobs/<int:job_id>/status.json", views.job_status, name="job_status"),
    path("jobs/<int:job_id>/cancel/", views.job_cancel, name="job_cancel"),
    path("jobs/<int:job_id>/resume/", views.job_resume, name="job_resume"),
]

from django.urls import path

from . import views

urlpatterns = [
    path("", views.join, name="home"),
    path("join/", views.join, name="join"),
    path("join/<str:code>/", views.participant_entry, name="participant_entry"),
    path("accounts/signup/", views.signup, name="signup"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("sessions/new/", views.session_create, name="session_create"),
    path("sessions/<int:session_id>/", views.session_edit, name="session_edit"),
    path(
        "sessions/<int:session_id>/activities/new/",
        views.activity_new_form,
        name="activity_new_form",
    ),
    path("sessions/<int:session_id>/activities/add/", views.activity_add, name="activity_add"),
    path(
        "sessions/<int:session_id>/activities/<int:activity_id>/",
        views.activity_edit,
        name="activity_edit",
    ),
    path(
        "sessions/<int:session_id>/activities/<int:activity_id>/move/",
        views.activity_move,
        name="activity_move",
    ),
    path(
        "sessions/<int:session_id>/activities/<int:activity_id>/delete/",
        views.activity_delete,
        name="activity_delete",
    ),
    path(
        "sessions/<int:session_id>/exercises/<int:exercise_id>/add/",
        views.exercise_add,
        name="exercise_add",
    ),
    path("sessions/<int:session_id>/save-plan/", views.plan_save, name="plan_save"),
    path("library/", views.library, name="library"),
    path("plans/<int:plan_id>/use/", views.plan_use, name="plan_use"),
    path("plans/<int:plan_id>/delete/", views.plan_delete, name="plan_delete"),
    path("sessions/<int:session_id>/start/", views.session_start, name="session_start"),
    path("sessions/<int:session_id>/end/", views.session_end, name="session_end"),
    path("sessions/<int:session_id>/control/", views.session_control, name="session_control"),
    path("sessions/<int:session_id>/projector/", views.session_projector, name="session_projector"),
    path("sessions/<int:session_id>/qr.svg", views.session_qr, name="session_qr"),
    path("sessions/<int:session_id>/summary/", views.session_summary, name="session_summary"),
]

from django.urls import path

from . import export_views, group_views, views

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
    path("sessions/<int:session_id>/notes/", views.session_notes, name="session_notes"),
    path("sessions/<int:session_id>/delete/", views.session_delete, name="session_delete"),
    path("account/", views.account_settings, name="account_settings"),
    path("account/delete/", views.account_delete, name="account_delete"),
    path("groups/", group_views.group_list, name="group_list"),
    path("groups/new/", group_views.group_create, name="group_create"),
    path("groups/<int:group_id>/", group_views.group_detail, name="group_detail"),
    path("groups/<int:group_id>/edit/", group_views.group_edit, name="group_edit"),
    path("groups/<int:group_id>/delete/", group_views.group_delete, name="group_delete"),
    *(
        path(
            f"sessions/<int:session_id>/export/{file}",
            export_views.export,
            {"kind": kind},
            name=f"export_{kind}",
        )
        for kind, file in [
            ("aggregates_csv", "aggregates.csv"),
            ("answers_csv", "answers.csv"),
            ("json", "session.json"),
            ("pdf", "summary.pdf"),
            ("pdf_private", "summary-private.pdf"),
        ]
    ),
]

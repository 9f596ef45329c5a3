from django.apps import AppConfig


class LiveSessionsConfig(AppConfig):
    # "sessions" belongs to django.contrib.sessions.
    name = "sessions"
    label = "live"
    verbose_name = "Live sessions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import live  # noqa: F401 (connects the sign-out receiver)

from channels.auth import AuthMiddlewareStack
from channels.sessions import CookieMiddleware
from django.urls import path

from . import consumers

websocket_urlpatterns = [
    # A phone has no sign-in, only its cookie: no trip to the database before its handshake,
    # which a room joining at once would otherwise queue behind each other's queries.
    path("ws/join/<str:code>/", CookieMiddleware(consumers.ParticipantConsumer.as_asgi())),
    path(
        "ws/sessions/<int:session_id>/control/",
        AuthMiddlewareStack(consumers.ControlConsumer.as_asgi()),
    ),
    path(
        "ws/sessions/<int:session_id>/projector/",
        AuthMiddlewareStack(consumers.ProjectorConsumer.as_asgi()),
    ),
]

from django.urls import path

from . import consumers

websocket_urlpatterns = [
    path("ws/join/<str:code>/", consumers.ParticipantConsumer.as_asgi()),
    path("ws/sessions/<int:session_id>/control/", consumers.ControlConsumer.as_asgi()),
    path("ws/sessions/<int:session_id>/projector/", consumers.ProjectorConsumer.as_asgi()),
]

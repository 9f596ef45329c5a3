"""A bare Channels application: the yardstick for Attune's joins and fan-out.

Joining is the same two requests and socket as a phone's join in Attune (bench/join.py): a
consent form with Django's CSRF token, the form posted by htmx (answered with the page that
opens the socket, and the participant cookie), then a socket that sends one stage when it
opens. The views touch no database and render no template, and run in the same HTTP handler,
settings and middleware as Attune's (bench/reference_settings.py only swaps the URLs). What
Attune takes beyond that is its own work: the database, its templates, presence and the
projector's counts.

For the fan-out, one consumer joins the group "bench" when a socket connects and forwards
whatever is sent to the group; a second path takes one message and sends it to the group.

bench.load starts it in Daphne processes of its own, with the channel layer Attune is configured
with, and times both against it in the same run as against Attune.

    python -m daphne -b 127.0.0.1 -p 8100 bench.reference:application
"""

from __future__ import annotations

import os
import secrets
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.reference_settings")
django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.layers import get_channel_layer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.middleware.csrf import get_token  # noqa: E402
from django.shortcuts import redirect  # noqa: E402
from django.urls import path  # noqa: E402

from facilitation.asgi import ThreadedHttpHandler  # noqa: E402
from facilitation.serve import tune_interpreter  # noqa: E402

GROUP = "bench"


def join(request: HttpRequest, code: str) -> HttpResponse:
    """The consent form, then the form posted, answered with the page that opens the socket."""
    phone_page = f'<main hx-ext="ws" ws-connect="/ws/join/{code}/"></main>'
    cookie = f"{settings.ATTUNE_PARTICIPANT_COOKIE}_{code}"  # one a session, as Attune's
    if request.COOKIES.get(cookie):
        return HttpResponse(phone_page)
    if request.method == "POST":  # CsrfViewMiddleware has checked the form's token
        response = HttpResponse(phone_page) if request.htmx else redirect(request.path)
        response.set_cookie(cookie, secrets.token_urlsafe(32), httponly=True)
        return response
    return HttpResponse(
        '<form method="post"><input type="hidden" name="csrfmiddlewaretoken" '
        f'value="{get_token(request)}"><button>Join</button></form>'
    )


urlpatterns = [path("join/<str:code>/", join)]


class PhoneConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        await self.accept()
        await self.send(text_data='<div id="phone-stage"></div>')


class ListenerConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        await self.channel_layer.group_add(GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(GROUP, self.channel_name)

    async def bench_message(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["text"])


class TriggerConsumer(AsyncWebsocketConsumer):
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.channel_layer.group_send(GROUP, {"type": "bench.message", "text": text_data})


application = ProtocolTypeRouter(
    {
        "http": ThreadedHttpHandler(),
        "websocket": AllowedHostsOriginValidator(
            URLRouter(
                [
                    path("ws/join/<str:code>/", PhoneConsumer.as_asgi()),
                    path("listen/", ListenerConsumer.as_asgi()),
                    path("trigger/", TriggerConsumer.as_asgi()),
                ]
            )
        ),
    }
)

# As in Attune's servers (facilitation/serve.py): the channel layer loaded before the first
# socket, then the same garbage collection and thread switching. Importing facilitation.serve
# also brought its trimming of Autobahn's and Twisted's log lines.
get_channel_layer()
tune_interpreter()

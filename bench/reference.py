"""A bare Channels application: the yardstick for Attune's fan-out.

One consumer joins the group "bench" when a socket connects and forwards whatever is sent to the
group; a second path takes one message and sends it to the group. bench.load starts it in Daphne
processes of its own, with the channel layer Attune is configured with, connects as many sockets
as phones and times one message to all of them. What Attune takes beyond that is its own work:
the database, and rendering each phone's stage.

    python -m daphne -b 127.0.0.1 -p 8100 bench.reference:application
"""

from __future__ import annotations

import os
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "facilitation.settings")
django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

GROUP = "bench"


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
        "websocket": URLRouter(
            [
                path("listen/", ListenerConsumer.as_asgi()),
                path("trigger/", TriggerConsumer.as_asgi()),
            ]
        )
    }
)

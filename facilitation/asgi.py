"""ASGI entry point: HTTP goes to Django, WebSockets to the Channels consumers."""

import os
from concurrent.futures import ThreadPoolExecutor

import django
from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "facilitation.settings")

# Threads that run HTTP requests. A slow request (a PDF export) holds one; the others go on.
# With PostgreSQL each holds a connection from the pool (DATABASE_POOL_SIZE, default 10, with
# one more for the sockets) while it works. Their number hardly changes a burst of joins.
HTTP_THREADS = 8


class SyncChainHandler(ASGIHandler):
    """Django's ASGI handler, with a request's middleware and view run in one go, in one of a
    few threads that live as long as the process.

    Django's own runs the chain in async mode: each middleware that can be async (most of
    Django's) runs its hooks in a thread through sync_to_async, and WhiteNoise, which cannot,
    hops back to the event loop: about twenty hops per request, each waiting its turn on a
    loop kept busy by a room's sockets, and the database work in a new thread (so with a new
    database connection) per request. A room of phones joining at once waited on those hops
    (docs/performance.md). Attune has no async views, so nothing is lost. (Django still runs its
    request signals in a thread of the request's own.)
    """

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)
        chain = self._middleware_chain

        def respond(request: HttpRequest) -> HttpResponse:
            try:
                return chain(request)
            finally:
                # As Django does when a request ends, but in the thread that used them: a
                # broken or expired connection is not kept for the next request.
                close_old_connections()

        self._middleware_chain = sync_to_async(
            respond,
            thread_sensitive=False,
            executor=ThreadPoolExecutor(HTTP_THREADS, thread_name_prefix="attune-http"),
        )


# Set up Django before importing consumers, which import models.
django.setup(set_prefix=False)
django_asgi_app = SyncChainHandler()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from sessions.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(URLRouter(websocket_urlpatterns)),
    }
)

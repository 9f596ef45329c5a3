"""ASGI entry point: HTTP goes to Django, WebSockets to the Channels consumers."""

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import django
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.base import BaseHandler
from django.http import HttpResponse
from django.template import engines
from django.urls import set_script_prefix
from django.utils import translation

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "facilitation.settings")

# Threads that run HTTP requests. A slow request (a PDF export) holds one; the others go on.
# With PostgreSQL each holds a connection from the pool (DATABASE_POOL_SIZE, default 10, with
# one more for the sockets) while it works. Few, because they share one interpreter with the
# event loop and the database thread: in a room's burst of joins, every one of them busy made
# those two wait for it, and 3 threads joined 200 phones about twice as fast as 8
# (docs/performance.md).
HTTP_THREADS = 3


class ThreadedHttpHandler(ASGIHandler):
    """Django serving HTTP as under a threaded WSGI server: each request runs whole (request
    signals, middleware, view, reading the response) in one of a few threads that live as long
    as the process, and the event loop only receives the request and sends the response.

    Django's own ASGI handler runs its middleware in async mode, each middleware's hooks in a
    thread of their own through sync_to_async, WhiteNoise (sync only) back on the loop, and the
    request signals in a new thread per request: some twenty hops between the loop and
    threads, each waiting its turn on a loop kept busy by a room's sockets, and two threads
    started per request. A room of phones joining at once waited on those hops
    (docs/performance.md). Attune has no async views, so nothing is lost.
    """

    def __init__(self) -> None:
        BaseHandler.__init__(self)
        self.load_middleware(is_async=False)
        self.executor = ThreadPoolExecutor(HTTP_THREADS, thread_name_prefix="attune-http")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django serves HTTP only, not {scope['type']}")
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        # Run in the thread's own context, not a copy of the loop's: what Django keeps per
        # context, the cache's Redis connection pool among it, then lasts as long as the thread
        # instead of being built again for every request.
        status, headers, body = await asyncio.get_running_loop().run_in_executor(
            self.executor, self.respond, scope, body_file
        )
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def respond(self, scope: dict[str, Any], body_file: Any) -> tuple[int, list, bytes]:
        """The response to one request, as the status, headers and body to send."""
        with body_file:
            set_script_prefix(get_script_prefix(scope))
            signals.request_started.send(sender=self.__class__, scope=scope)
            request, response = self.create_request(scope, body_file)
            if request is not None:
                response = self.get_response(request)
            try:
                # Static files come as a stream; everything Attune serves fits in memory.
                body = b"".join(response) if response.streaming else response.content
                return response.status_code, self.headers(response), body
            finally:
                response.close()  # request_finished: expired database connections are closed

    @staticmethod
    def headers(response: HttpResponse) -> list[tuple[bytes, bytes]]:
        # As Django's ASGIHandler.send_response, which keeps the headers' case.
        headers = [
            (name.encode("ascii"), value.encode("latin1")) for name, value in response.items()
        ]
        headers += [
            (b"Set-Cookie", cookie.output(header="").encode("ascii").strip())
            for cookie in response.cookies.values()
        ]
        return headers


def prepare() -> None:
    """Compile Attune's templates and load each language's translations before serving.

    Otherwise the first push of a question in each process waited for them: a room's phones
    get their stage rendered in every language, and the partials a question includes were
    compiled at that moment (about 5 ms, docs/performance.md). A template that does not
    compile stops the server here, not in front of a room.
    """
    engine = engines["django"].engine
    for directory in map(Path, engine.dirs):
        for template in sorted(directory.rglob("*.html")):
            engine.get_template(template.relative_to(directory).as_posix())
    for language, _name in settings.LANGUAGES:
        translation.activate(language)  # which loads its catalogue
    translation.deactivate()


# Set up Django before importing consumers, which import models.
django.setup(set_prefix=False)
prepare()
django_asgi_app = ThreadedHttpHandler()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from sessions.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(URLRouter(websocket_urlpatterns)),
    }
)

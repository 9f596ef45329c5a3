"""Django's Redis cache, with one Redis client per server address for the whole process.

Django keeps a cache object per thread and per async context, and each of its calls builds a
new redis.Redis object around the object's connection pool. Both cost: building the client
took longer than the command (on the sixth machine of docs/performance.md a read took
0.45 ms, 0.28 ms of it making the client, against 0.18 ms on a kept client), and a results
push, which runs in a context of its own, would get a new pool, and so a new connection, for
every claim of its slice (sessions/live.py). Every join reads the join-code throttle twice.

Here every cache object of the process uses the same client for an address. A redis.Redis
object may be shared between threads: it takes a connection from its pool for each command.
"""

from __future__ import annotations

import threading
from typing import Any

from django.core.cache.backends import redis

_clients: dict[tuple[str, type, str], Any] = {}
_clients_lock = threading.Lock()


class RedisCacheClient(redis.RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Made once here rather than on every call: the throttle reads are on the join's path.
        self._options_key = repr(sorted(self._pool_options.items()))

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        address = self._servers[self._get_connection_pool_index(write)]
        found = (address, self._pool_class, self._options_key)
        if found not in _clients:
            with _clients_lock:
                if found not in _clients:
                    pool = self._pool_class.from_url(address, **self._pool_options)
                    _clients[found] = self._client(connection_pool=pool)
        return _clients[found]


class RedisCache(redis.RedisCache):
    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = RedisCacheClient

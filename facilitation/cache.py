"""Django's Redis cache, keeping its client objects.

Django's RedisCacheClient builds a new redis.Redis object around its connection pool for every
call, and building one costs more than the command: on the sixth machine of
docs/performance.md a get took 0.45 ms, 0.28 ms of it making the client, against 0.18 ms for
the same command on a kept client. Every join reads the join-code throttle twice and every
results push claims its slice, so the cache keeps one client per pool instead. A redis.Redis
object may be shared between threads: it takes a connection from the pool for each command.
"""

from __future__ import annotations

from typing import Any

from django.core.cache.backends import redis


class RedisCacheClient(redis.RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        index = self._get_connection_pool_index(write)
        if index not in self._clients:
            self._clients[index] = super().get_client(key, write=write)
        return self._clients[index]


class RedisCache(redis.RedisCache):
    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = RedisCacheClient

"""Slowing down guessing: join codes from one client, passwords for one name or from one client.

Failures are counted in the cache, which all server processes share when REDIS_URL is set.
Nothing goes to the database, and what identifies a client (its address, the username it typed)
is never stored: the cache key holds an HMAC of it under SECRET_KEY, and each count is dropped
when its window ends.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest


def now() -> float:
    # A function of its own so that tests can move the clock.
    return time.time()


def client_address(request: HttpRequest) -> str:
    return request.META.get("REMOTE_ADDR", "")


@dataclass(frozen=True)
class Throttle:
    """At most `limit` failures per `window` seconds for one identity; then refuse until it ends.

    Windows are fixed slices of the clock, so one count is a single cache entry that add() and
    incr() change atomically on any backend, and that expires on its own.
    """

    scope: str
    limit: int
    window: int

    def is_blocked(self, identity: str) -> bool:
        return (cache.get(self.cache_key(identity)) or 0) >= self.limit

    def hit(self, identity: str) -> int:
        """Count one failure for the identity; returns the count in the current window."""
        key = self.cache_key(identity)
        cache.add(key, 0, timeout=self.window)
        try:
            return cache.incr(key)
        except ValueError:  # the entry expired between add() and incr()
            cache.add(key, 1, timeout=self.window)
            return 1

    def cache_key(self, identity: str) -> str:
        digest = hmac.new(settings.SECRET_KEY.encode(), identity.encode(), hashlib.sha256)
        return f"throttle:{self.scope}:{int(now() // self.window)}:{digest.hexdigest()}"


UNKNOWN_JOIN_CODES = Throttle("join-code", limit=10, window=60)
FAILED_SIGN_INS_FOR_USERNAME = Throttle("sign-in-username", limit=5, window=15 * 60)
FAILED_SIGN_INS_FROM_ADDRESS = Throttle("sign-in-address", limit=20, window=15 * 60)

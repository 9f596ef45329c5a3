"""Attune settings: one file, driven by environment variables.

Unset, everything runs on embedded defaults (an SQLite file and the in-memory channel layer).
DATABASE_URL selects PostgreSQL and REDIS_URL the Redis channel layer, which is how Attune runs
on several processes and machines. ATTUNE_PRODUCTION=1 switches on production hardening.
"""

import os
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


PRODUCTION = env_bool("ATTUNE_PRODUCTION")
DEBUG = env_bool("DEBUG", default=not PRODUCTION)

if PRODUCTION:
    SECRET_KEY = os.environ.get("SECRET_KEY", "")
    # The same test as Django's security.W009, made fatal: sessions, CSRF tokens and the
    # throttles' keys are only as safe as this key.
    too_weak = len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5
    if too_weak or SECRET_KEY.startswith("django-insecure-"):
        raise ImproperlyConfigured(
            "ATTUNE_PRODUCTION=1 needs SECRET_KEY set to a long random value (at least 50 "
            "characters), for example the output of: "
            "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
        )
else:
    SECRET_KEY = os.environ.get("SECRET_KEY", "attune-development-key-not-for-production")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

# The address printed as the join URL and encoded in the QR code. Set it to the address phones
# can reach (for example http://192.168.1.20:8000) when the facilitator's browser uses localhost.
PUBLIC_URL = os.environ.get("ATTUNE_PUBLIC_URL", "").rstrip("/")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "csp",
    "sessions.apps.LiveSessionsConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The browser's language (Accept-Language) for every page; no language prefix in URLs.
    # The control view and the projector use the session's language instead (sessions/views.py).
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "facilitation.urls"
ASGI_APPLICATION = "facilitation.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=int(os.environ.get("CONN_MAX_AGE", "0")),
    )
}

# One test database per test run, so that two runs at once do not share it.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory, so the browser tests' Daphne process can share the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / f"test-db-{os.getpid()}.sqlite3")}
    if "CONN_MAX_AGE" not in os.environ:
        # The thread that runs the sockets' queries keeps its connection instead of opening
        # one for every answer. (PostgreSQL gets a pool instead, below.)
        DATABASES["default"]["CONN_MAX_AGE"] = 600
    # Several consumers write at once: take the write lock when a transaction starts and wait
    # for it, instead of failing half-way through with "database is locked".
    # Write-ahead log: readers do not wait for the writer, and a commit costs one sync of the
    # log instead of several of the database file (each answer is a commit).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
else:
    DATABASES["default"]["TEST"] = {"NAME": f"test_attune_{os.getpid()}"}
    if DATABASES["default"]["CONN_MAX_AGE"] == 0:
        # A pool of connections per process: a room joining at once runs many requests in
        # threads of their own, and one connection each would pass PostgreSQL's limit
        # (max_connections, 100 by default). Requests wait up to `timeout` for a free one.
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": 2,
            "max_size": int(os.environ.get("DATABASE_POOL_SIZE", "10")),
            "timeout": 20,
        }

REDIS_URL = os.environ.get("REDIS_URL", "")
# Each new Redis connection would tell the server redis-py's name and version (CLIENT SETINFO):
# two more round trips, and a scan of the installed packages for the version, every time a room
# of sockets connecting at once grows the pool (docs/performance.md).
REDIS_CONNECTION_OPTIONS = {"driver_info": None}
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            # The core layer, not the pub/sub one: see docs/performance.md.
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [
                    {
                        "address": REDIS_URL,
                        # No socket timeout: redis-py 6 and later time out reads after 5 s,
                        # shorter than the layer's own 5 s blocking read, which dropped every
                        # idle socket with 1011.
                        "socket_timeout": None,
                        # redis-py's asyncio pool fails at once past 100 connections in use
                        # (MaxConnectionsError), and a room of sockets connecting together
                        # each joins a group at the same moment.
                        "max_connections": 1000,
                        **REDIS_CONNECTION_OPTIONS,
                    }
                ],
                "prefix": os.environ.get("CHANNEL_PREFIX", "attune"),
            },
        }
    }
    # Shared by every process, so the throttles (sessions/throttle.py) count across all of them.
    CACHES = {
        "default": {
            # Django's, keeping its Redis client objects (facilitation/cache.py).
            "BACKEND": "facilitation.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": os.environ.get("CHANNEL_PREFIX", "attune"),
            "OPTIONS": REDIS_CONNECTION_OPTIONS,
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
# Each language's own name: the facilitator picks a session's language from this list, and a
# browser asking for neither gets English. Translations live in locale/ (docs/development.md).
LANGUAGES = [("en", "English"), ("es", "Español")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
# In development WhiteNoise serves straight from the app folders, so no collectstatic is needed.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # collectstatic also writes a compressed copy of each file, which WhiteNoise sends to the
    # browsers that take it: a room of phones on one Wi-Fi loads htmx, the script and the
    # styles in about a third of the bytes.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
SESSION_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_SECURE = PRODUCTION
if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Content Security Policy: pages load and run only this site's own files, with no inline script,
# inline style or eval anywhere (base.html configures htmx to need none of them).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        # 'self' covers this site's WebSocket (ws: and wss:) in CSP Level 3 browsers. Safari
        # before 16 needs it spelled out: the address phones use is added when it is set.
        "connect-src": [SELF, *([PUBLIC_URL.replace("http", "ws", 1)] if PUBLIC_URL else [])],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# Attune's own settings.
# How long the participant cookie lives: long enough for a session and a reconnect, no longer.
ATTUNE_PARTICIPANT_COOKIE = "attune_participant"
ATTUNE_PARTICIPANT_COOKIE_AGE = 12 * 60 * 60
# Kept only by phones that chose to keep their nickname across a group's sessions.
ATTUNE_MEMBER_COOKIE = "attune_member"
ATTUNE_MEMBER_COOKIE_AGE = 365 * 24 * 60 * 60
# Phrases that flag an open answer to the facilitator (sessions/safety.py).
ATTUNE_CRISIS_PHRASES_FILE = os.environ.get(
    "ATTUNE_CRISIS_PHRASES_FILE", str(BASE_DIR / "sessions" / "exercises" / "crisis_phrases.txt")
)
# Largest WebSocket message accepted from any client, in bytes.
ATTUNE_MAX_MESSAGE_BYTES = 4096
# Messages one socket may send in a number of seconds; twice as many closes it.
ATTUNE_MESSAGE_RATE = (30, 10.0)
# Counts and results reach the projector and control view at most this often (seconds), per
# session, whatever the number of server processes; the last change is always pushed.
ATTUNE_PUSH_INTERVAL = 0.1
# Seconds after which the sockets of a server process that stopped beating (killed, crashed)
# no longer count as connected phones (sessions/presence.py).
ATTUNE_PRESENCE_TIMEOUT = float(os.environ.get("ATTUNE_PRESENCE_TIMEOUT", "30"))
# Each server process applies the retention rule this often, from its start (0: never; then
# run `manage.py apply_retention` from cron).
ATTUNE_RETENTION_SWEEP_SECONDS = max(
    0.0, float(os.environ.get("ATTUNE_RETENTION_SWEEP_SECONDS", "3600"))
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # WeasyPrint reports each step of every PDF at INFO.
    "loggers": {"weasyprint": {"level": "WARNING"}, "fontTools": {"level": "WARNING"}},
}

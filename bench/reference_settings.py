"""Attune's settings with the reference application's URLs (bench/reference.py)."""

from facilitation.settings import *  # noqa: F403

ROOT_URLCONF = "bench.reference"

"""Create (or refresh) the demo facilitator account and print how to sign in."""

import secrets

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the 'demo' facilitator account with a fresh password and print it."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo")
        parser.add_argument(
            "--password", help="Use this password instead of a new random one (tests, scripts)."
        )

    def handle(self, *args, username: str, password: str | None, **options):
        password = password or secrets.token_urlsafe(9)
        user, created = User.objects.get_or_create(username=username)
        user.set_password(password)
        user.save()
        verb = "Created" if created else "Refreshed"
        self.stdout.write(f"{verb} the demo facilitator account.")
        self.stdout.write(f"  Sign in with username: {username}")
        self.stdout.write(f"               password: {password}")
